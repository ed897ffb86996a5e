"""Reproducibility and scale: one call at the top of every chapter.

``setup()`` seeds every generator the book uses, pins the thread count (small problems run
faster on one thread, and results do not depend on the thread count), applies the house
plotting style and reads two environment switches:

``DLT_SCALE``  ``ci`` (default: every chapter runs in seconds) or ``paper`` (the papers' sizes).
``DLT_DEVICE`` ``cpu`` or ``cuda``; by default ``cuda`` when torch sees a GPU, else ``cpu``.

torch is only touched when the chapter already imported it or asks for it, so numpy-only
chapters do not pay its import time.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass

import numpy as np

SCALES = ("ci", "paper")


@dataclass(frozen=True)
class Config:
    """What ``setup`` decided: the seed, the scale and the torch device name."""

    seed: int
    scale: str
    device: str
    threads: int

    @property
    def paper(self) -> bool:
        return self.scale == "paper"


def scale() -> str:
    """The value of ``DLT_SCALE`` (``ci`` when unset); raise on anything else."""
    value = os.environ.get("DLT_SCALE", "ci").strip().lower() or "ci"
    if value not in SCALES:
        raise ValueError(f"DLT_SCALE must be one of {SCALES}, got {value!r}")
    return value


def pick(ci, paper):
    """Return ``ci`` or ``paper`` according to ``DLT_SCALE``: ``n = pick(ci=300, paper=5000)``."""
    return paper if scale() == "paper" else ci


@dataclass(frozen=True)
class Size:
    """One experiment size: the default (``ci``), the papers' (``paper``), and what the paper reported."""

    ci: object
    paper: object
    reported: str = ""


class Sizes:
    """A chapter's experiment sizes, declared once; the current scale picks the values.

    >>> S = sizes(restarts=(40, 1000, "1000 restarts per setting"), k=((6, 8), (6, 8, 10)))
    >>> S.restarts          # 40 by default, 1000 under DLT_SCALE=paper
    40

    Displayed in a notebook, it is the table of both sizes (and what the paper reported) with
    the column in use marked, so every chapter states its sizes in the same way.
    """

    def __init__(self, entries: dict):
        if not entries:
            raise ValueError("declare at least one size")
        self._entries = {}
        for name, value in entries.items():
            if isinstance(value, Size):
                size = value
            elif isinstance(value, (tuple, list)) and len(value) in (2, 3):
                size = Size(*value)
            else:
                raise ValueError(f"size {name!r} must be (ci, paper) or (ci, paper, reported), got {value!r}")
            self._entries[name] = size
        self.scale = scale()

    def __getattr__(self, name):
        entries = self.__dict__.get("_entries", {})
        if name in entries:
            size = entries[name]
            return size.paper if self.scale == "paper" else size.ci
        raise AttributeError(f"no size named {name!r}; declared: {sorted(entries)}")

    def __getitem__(self, name):
        return getattr(self, name)

    def rows(self) -> list[tuple[str, str, str, str]]:
        return [(n, _short(s.ci), _short(s.paper), s.reported) for n, s in self._entries.items()]

    def _repr_html_(self) -> str:
        import html

        mark = {"ci": (" (in use)", ""), "paper": ("", " (in use)")}[self.scale]
        head = (f"<tr><th>size</th><th>default{mark[0]}</th><th>DLT_SCALE=paper{mark[1]}</th>"
                "<th>the paper</th></tr>")
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows()
        )
        return f'<table class="dlt-claims dlt-sizes"><thead>{head}</thead><tbody>{body}</tbody></table>'

    def __repr__(self) -> str:
        lines = [f"sizes in use: {self.scale}"]
        lines += [f"  {n}: default {c}, paper {p}" + (f" ({r})" if r else "") for n, c, p, r in self.rows()]
        return "\n".join(lines)


def _short(value) -> str:
    if isinstance(value, (list, tuple, range)):
        items = list(value)
        if len(items) > 6:
            return f"{_short(items[0])}, {_short(items[1])}, ..., {_short(items[-1])} ({len(items)} values)"
        return ", ".join(_short(v) for v in items)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def sizes(**entries) -> Sizes:
    """Declare a chapter's sizes: ``S = repro.sizes(steps=(3000, 30000, "3e4 in the paper"))``."""
    return Sizes(entries)


def quiet() -> bool:
    """True when progress bars should stay silent (tests, book builds, ``DLT_QUIET=1``)."""
    if os.environ.get("DLT_QUIET", "").lower() in ("1", "true", "yes"):
        return True
    return "pytest" in sys.modules or os.environ.get("DLT_WIDGETS") == "static"


def progress(iterable=None, **kwargs):
    """``tqdm.auto.tqdm`` that is silent under test and in builds."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", quiet())
    return tqdm(iterable, **kwargs)


def rng(seed: int | np.random.Generator | None = 0) -> np.random.Generator:
    """A numpy Generator from a seed (or the Generator itself)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("pass an integer seed: every random experiment in the book is seeded")
    return np.random.default_rng(seed)


def device(use_torch: bool | None = None) -> str:
    """The torch device name: ``DLT_DEVICE`` if set, else ``cuda`` when available, else ``cpu``."""
    wanted = os.environ.get("DLT_DEVICE", "").strip().lower()
    if wanted and wanted not in ("cpu", "cuda"):
        raise ValueError(f"DLT_DEVICE must be 'cpu' or 'cuda', got {wanted!r}")
    if use_torch is None:
        use_torch = "torch" in sys.modules
    if not use_torch:
        return wanted or "cpu"
    import torch

    if wanted == "cuda" and not torch.cuda.is_available():
        raise ValueError("DLT_DEVICE=cuda but torch sees no GPU; unset it or use DLT_DEVICE=cpu")
    if wanted:
        return wanted
    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_device(name=None) -> str:
    """A validated torch device name: ``None`` means :func:`device` (``DLT_DEVICE``, else cuda when present).

    Accepts ``cpu``, ``cuda`` and ``cuda:N``; raises ``ValueError`` for anything else, and for
    cuda when torch sees no GPU, so a bad ``device=`` argument fails with a clear message.
    """
    if name is None:
        return device(use_torch=True)
    text = str(name).strip().lower()
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N' (or None for DLT_DEVICE), got {name!r}")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but torch sees no GPU; use device='cpu' (or unset DLT_DEVICE)")
    return text


def set_threads(n: int = 1, use_torch: bool | None = None) -> None:
    """Pin BLAS (and torch) to ``n`` threads.

    threadpoolctl limits the BLAS libraries already loaded (numpy's); the environment
    variables reach those loaded later, e.g. the OpenBLAS that scipy brings on first import.
    """
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # threadpoolctl ships with scikit-learn; without it env vars must do
        pass
    if use_torch is None:
        use_torch = "torch" in sys.modules
    if use_torch:
        import torch

        torch.set_num_threads(n)


def seed_everything(seed: int = 0, use_torch: bool | None = None) -> None:
    """Seed Python's ``random``, numpy's legacy global generator and torch."""
    random.seed(seed)
    np.random.seed(seed)
    if use_torch is None:
        use_torch = "torch" in sys.modules
    if use_torch:
        import torch

        torch.manual_seed(seed)


def _inline_figures() -> None:
    """In a notebook, show figures inline, also bare ``Figure`` objects returned by a cell."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")


def setup(seed: int = 0, threads: int = 1, use_torch: bool | None = None, style: bool = True) -> Config:
    """Seed, pin threads, set the plotting style; return the :class:`Config`.

    ``use_torch=None`` touches torch only if it is already imported.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if use_torch is None:
        use_torch = "torch" in sys.modules
    seed_everything(int(seed), use_torch)
    set_threads(threads, use_torch)
    if style:
        from helpers import plotting

        _inline_figures()  # first: the inline backend applies its own rc settings
        plotting.use_style()
    return Config(seed=int(seed), scale=scale(), device=device(use_torch), threads=threads)
