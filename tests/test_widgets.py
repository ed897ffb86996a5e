import importlib
import pkgutil

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

import helpers
from helpers import widgets

matplotlib.use("Agg")


def _compute(a, b):
    if b == "boom":
        raise RuntimeError("cannot compute")
    return np.linspace(0, 1, 20) ** a * (1.0 if b == "x" else 2.0)


def _plot(result):
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot(result)
    return fig


def _spec(**kw):
    return widgets.Spec(_compute, _plot, {"a": [1, 2, 3], "b": ["x", "y"]}, **kw)


def test_spec_validation():
    with pytest.raises(ValueError, match="empty"):
        widgets.Spec(_compute, _plot, {"a": []})
    with pytest.raises(ValueError, match="repeated"):
        widgets.Spec(_compute, _plot, {"a": [1, 1]})
    with pytest.raises(ValueError, match="not one of"):
        _spec(default={"a": 7})
    with pytest.raises(ValueError, match="max_frames"):
        widgets.Spec(_compute, _plot, {"a": list(range(10)), "b": list(range(10))}, max_frames=50)
    spec = _spec(default={"b": "y"})
    assert spec.start() == {"a": 2, "b": "y"} and spec.n_frames == 6
    assert len(list(spec.points())) == 6


def test_render_turns_errors_into_a_message():
    spec = widgets.Spec(_compute, _plot, {"a": [1], "b": ["boom"]})
    fig = widgets.render(spec, {"a": 1, "b": "boom"})
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("cannot compute" in t for t in texts)
    with pytest.raises(RuntimeError):
        widgets.render(spec, {"a": 1, "b": "boom"}, strict=True)


def test_live_widget_recomputes_on_change():
    box = widgets.explore(_spec(), mode_="live")
    slider = box.children[0]
    image = box.children[-1]
    first = image.value
    slider.value = 3
    assert image.value != first and image.value[:4] == b"\x89PNG"


def test_static_widget_links_sliders_to_stacks():
    import ipywidgets as W

    box = widgets.explore(_spec(title="t"), mode_="static")
    sliders = [c for c in box.children if isinstance(c, (W.SelectionSlider, W.ToggleButtons))]
    root = next(c for c in box.children if isinstance(c, W.Stack))
    assert len(sliders) == 2 and len(root.children) == 3
    assert all(len(child.children) == 2 for child in root.children)
    images = [img for child in root.children for img in child.children]
    assert len({img.value for img in images}) == 6  # every setting drew its own frame
    # the start frame is shown: a=2 (index 1), b='x' (index 0)
    assert root.selected_index == 1 and root.children[1].selected_index == 0


def test_explore_argument_errors():
    with pytest.raises(ValueError):
        widgets.explore(_compute)
    with pytest.raises(ValueError):
        widgets.explore(_spec(), _plot)
    with pytest.raises(ValueError):
        widgets.explore(_spec(), mode_="movie")


def _import_all_helpers():
    for mod in pkgutil.iter_modules(helpers.__path__):
        importlib.import_module(f"helpers.{mod.name}")
    return dict(widgets.REGISTRY)


def test_registered_widgets_exist():
    registry = _import_all_helpers()
    for name in registry:
        assert name.startswith("ch"), f"widget names start with the chapter: {name}"


@pytest.mark.parametrize("name", sorted(_import_all_helpers()))
def test_every_grid_point_of_every_widget_draws(name):
    """A widget never shows a traceback: every slider position computes and plots."""
    spec = widgets.REGISTRY[name]()
    assert isinstance(spec, widgets.Spec)
    assert spec.n_frames <= spec.max_frames
    for params in spec.points():
        fig = widgets.render(spec, params, strict=True)
        assert isinstance(fig, Figure), f"{name} at {params} returned {type(fig)}"
        assert fig.axes, f"{name} at {params} drew nothing"
