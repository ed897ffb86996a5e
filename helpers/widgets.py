"""Explorable figures: a live widget in a kernel, a pre-rendered one in the static book.

A chapter describes a figure it wants readers to play with by a :class:`Spec`: a
``compute(**params)`` function returning plain results, a ``plot(result)`` function
returning a matplotlib Figure, and a ``grid`` of slider values. :func:`explore` turns the
spec into a widget:

- ``live`` mode (a Jupyter kernel, the default): ipywidgets sliders restricted to the grid
  values; each move recomputes and redraws.
- ``static`` mode (``DLT_WIDGETS=static``, set by ``make book``): every grid point is
  rendered once at build time into a stack of images, and the sliders are linked to the
  stacks in the browser (``jslink``), so the built HTML page can still be explored without
  a kernel. The widget state is embedded in the page by the build.

A failing point never shows a traceback: the figure says what went wrong instead. Unit
tests call :func:`render` with ``strict=True`` on every grid point of every registered spec.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

MODES = ("live", "static")
#: Spec factories by name, filled by :func:`register`; benchmarks and tests iterate it.
REGISTRY: dict[str, Callable[[], Spec]] = {}


@dataclass
class Spec:
    """What an explorable figure needs.

    ``grid`` maps each parameter name to the values its slider may take (numbers or strings);
    ``default`` picks the starting value of some of them (else the middle value);
    ``labels`` gives slider captions (else the parameter names).
    """

    compute: Callable[..., Any]
    plot: Callable[[Any], Any]
    grid: dict[str, Sequence]
    title: str = ""
    default: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    max_frames: int = 80

    def __post_init__(self):
        if not callable(self.compute) or not callable(self.plot):
            raise ValueError("compute and plot must be callables")
        if not self.grid:
            raise ValueError("grid must name at least one parameter")
        grid = {}
        for name, values in self.grid.items():
            values = list(values)
            if not values:
                raise ValueError(f"grid[{name!r}] is empty")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"grid[{name!r}] has repeated values")
            grid[name] = values
        self.grid = grid
        for name, value in self.default.items():
            if name not in grid:
                raise ValueError(f"default names {name!r}, which is not in the grid")
            if value not in grid[name]:
                raise ValueError(f"default {name}={value!r} is not one of the grid values {grid[name]}")
        n = self.n_frames
        if n > self.max_frames:
            raise ValueError(f"the grid has {n} points; at most max_frames={self.max_frames} are pre-rendered")

    @property
    def n_frames(self) -> int:
        n = 1
        for values in self.grid.values():
            n *= len(values)
        return n

    def start(self) -> dict:
        """The starting parameters: ``default`` where given, else each grid's middle value."""
        return {k: self.default.get(k, v[(len(v) - 1) // 2]) for k, v in self.grid.items()}

    def points(self):
        """Every grid point as a dict, in slider order."""
        names = list(self.grid)
        for combo in itertools.product(*self.grid.values()):
            yield dict(zip(names, combo))


def register(name: str):
    """Decorator: record a zero-argument spec factory under ``name`` (for tests and benchmarks)."""

    def deco(factory):
        if name in REGISTRY and REGISTRY[name] is not factory:
            raise ValueError(f"a widget named {name!r} is registered already")
        REGISTRY[name] = factory
        return factory

    return deco


def mode() -> str:
    value = os.environ.get("DLT_WIDGETS", "live").strip().lower() or "live"
    if value not in MODES:
        raise ValueError(f"DLT_WIDGETS must be one of {MODES}, got {value!r}")
    return value


def render(spec: Spec, params: dict, strict: bool = False):
    """compute + plot at ``params``; a failure becomes a figure saying so (unless ``strict``)."""
    from helpers import plotting

    try:
        return spec.plot(spec.compute(**params))
    except Exception as err:  # a widget shows a message, never a traceback
        if strict:
            raise
        return plotting.message_figure(f"cannot draw this setting:\n{type(err).__name__}: {err}")


def render_png(spec: Spec, params: dict, dpi: int = 80, strict: bool = False) -> bytes:
    from helpers import plotting

    return plotting.to_png(render(spec, params, strict=strict), dpi=dpi)


def latency(spec: Spec, points=None, repeats: int = 1) -> list[float]:
    """Seconds per live callback (compute + plot + PNG) at each point (default: all grid points)."""
    points = list(points if points is not None else spec.points())
    times = []
    for _ in range(repeats):
        for params in points:
            t0 = time.perf_counter()
            render_png(spec, params, strict=True)
            times.append(time.perf_counter() - t0)
    return times


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) or hasattr(v, "dtype")


def _label(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _controls(spec: Spec):
    import ipywidgets as W

    controls = {}
    start = spec.start()
    for name, values in spec.grid.items():
        options = [(_label(v), v) for v in values]
        desc = spec.labels.get(name, name)
        style = {"description_width": "initial"}
        if all(_is_number(v) for v in values) and len(values) > 1:
            ctrl = W.SelectionSlider(options=options, value=start[name], description=desc, style=style,
                                     continuous_update=False, layout=W.Layout(width="420px"))
        else:
            ctrl = W.ToggleButtons(options=options, value=start[name], description=desc, style=style)
        controls[name] = ctrl
    return controls


def _live(spec: Spec):
    import ipywidgets as W

    controls = _controls(spec)
    image = W.Image(format="png")
    frames: dict[tuple, bytes] = {}  # a setting seen before answers at once

    def update(_change=None):
        params = {k: c.value for k, c in controls.items()}
        key = tuple(repr(v) for v in params.values())
        if key not in frames:
            frames[key] = render_png(spec, params)
        image.value = frames[key]

    for ctrl in controls.values():
        ctrl.observe(update, names="value")
    update()
    header = [W.HTML(f"<b>{spec.title}</b>")] if spec.title else []
    return W.VBox([*header, *controls.values(), image])


def _static(spec: Spec):
    import ipywidgets as W

    controls = _controls(spec)
    names = list(spec.grid)
    start = spec.start()
    stacks: dict[str, list] = {n: [] for n in names}

    def build(depth: int, fixed: dict):
        if depth == len(names):
            return W.Image(value=render_png(spec, fixed), format="png")
        name = names[depth]
        children = [build(depth + 1, {**fixed, name: v}) for v in spec.grid[name]]
        stack = W.Stack(children=children, selected_index=spec.grid[name].index(start[name]))
        stacks[name].append(stack)
        return stack

    root = build(0, {})
    for name in names:
        for stack in stacks[name]:
            W.jslink((controls[name], "index"), (stack, "selected_index"))
    note = W.HTML(
        f"<small>Pre-rendered at {spec.n_frames} settings when the book was built; "
        "open the notebook in Jupyter for the live version.</small>"
    )
    header = [W.HTML(f"<b>{spec.title}</b>")] if spec.title else []
    return W.VBox([*header, *controls.values(), root, note])


def explore(spec: Spec | Callable, plot: Callable | None = None, grid: dict | None = None, *,
            mode_: str | None = None, **spec_kwargs):
    """Show an explorable figure: ``explore(spec)`` or ``explore(compute, plot, grid, title=...)``.

    Returns the widget (the last expression of a cell displays it).
    """
    if not isinstance(spec, Spec):
        if plot is None or grid is None:
            raise ValueError("pass a Spec, or compute, plot and grid")
        spec = Spec(spec, plot, grid, **spec_kwargs)
    elif plot is not None or grid is not None or spec_kwargs:
        raise ValueError("pass either a Spec or compute/plot/grid, not both")
    chosen = mode_ or mode()
    if chosen not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {chosen!r}")
    return _live(spec) if chosen == "live" else _static(spec)
