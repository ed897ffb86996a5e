"""The house plotting style and a few figure helpers shared by the chapters.

Plot functions in the topic modules take computed results and return a matplotlib
``Figure``; they never compute. Figures are closed after display by the caller (the
widgets helper does it for frames), so that notebooks do not accumulate open figures.
"""

from __future__ import annotations

import io

import matplotlib

STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "lines.linewidth": 1.8,
    "image.cmap": "viridis",
    "axes.prop_cycle": matplotlib.cycler(
        color=["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]
    ),
}

#: Colours with a fixed meaning across the book.
COLORS = {"theory": "#222222", "gd": "#1f77b4", "sgd": "#ff7f0e", "other": "#d62728", "truth": "#2ca02c"}


def use_style() -> None:
    """Apply the house style to matplotlib's global settings."""
    matplotlib.rcParams.update(STYLE)


def subplots(nrows: int = 1, ncols: int = 1, width: float | None = None, height: float | None = None, **kwargs):
    """``plt.subplots`` with the book's default sizes: about 3.4 inches wide per panel."""
    import matplotlib.pyplot as plt

    if nrows < 1 or ncols < 1:
        raise ValueError("nrows and ncols must be >= 1")
    width = width if width is not None else min(3.4 * ncols, 10.0)
    height = height if height is not None else 3.0 * nrows
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=kwargs.pop("squeeze", True), **kwargs)


def message_axes(ax, text: str, color: str = "#b00020") -> None:
    """Write a message in the middle of an axes (e.g. 'diverged at step 37') instead of a plot."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=color, fontsize=11, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def message_figure(text: str, width: float = 6.0, height: float = 3.0):
    """A figure that only says ``text``: what a widget shows for a point it cannot draw."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    message_axes(fig.add_subplot(), text)
    return fig


def to_png(fig, dpi: int = 80) -> bytes:
    """Render a figure to PNG bytes (and close it if pyplot manages it).

    Widget frames are drawn once on an Agg canvas and encoded by Pillow: about half the cost
    of ``savefig(bbox_inches="tight")``, which draws the figure twice. Figures should use a
    layout engine (``plotting.subplots`` sets ``constrained``) so nothing is clipped.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    width, height = canvas.get_width_height(physical=True)
    image = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="png", compress_level=6)
    close(fig)
    return buf.getvalue()


def close(fig) -> None:
    """Close a figure whether or not pyplot manages it (closing an unmanaged one is a no-op)."""
    import matplotlib.pyplot as plt

    plt.close(fig)
