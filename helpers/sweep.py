"""Run a function over a grid of parameters: local processes, or a Dask cluster, with caching.

    from helpers import sweep
    result = sweep.run(experiment, {"k": [6, 8, 10], "seed": range(100)})
    result.values        # in grid order
    result.failures      # each with its parameters and the error

Where it runs is decided by ``DLT_CLUSTER``:

- unset: joblib's local worker processes (``n_jobs``, default all cores);
- ``local-dask``: a ``distributed.LocalCluster`` started for the sweep;
- ``tcp://host:port`` (any scheduler address): that Dask cluster, through joblib's Dask backend.

Long runs can be cached on disk with :func:`cached` (``joblib.Memory``, keyed by the function's
code and its arguments) in the folder ``DLT_CACHE`` (default ``.dlt_cache`` in the repository),
so re-executing a chapter at paper scale reuses finished results; changing the function's code
invalidates its entries.
"""

from __future__ import annotations

import itertools
import os
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Failure:
    """A grid point whose function call raised."""

    params: dict
    error: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.params}: {self.error}"


@dataclass
class SweepResult:
    """Values in grid order (``None`` where the point failed) and the failures."""

    points: list[dict]
    values: list
    failures: list[Failure] = field(default_factory=list)
    backend: str = "sequential"

    @property
    def ok(self) -> bool:
        return not self.failures

    def raise_failures(self) -> None:
        if self.failures:
            lines = "\n".join(f"- {f}" for f in self.failures)
            raise RuntimeError(f"{len(self.failures)} of {len(self.points)} points failed:\n{lines}")


def grid_points(grid: Mapping[str, Iterable] | Sequence[Mapping]) -> list[dict]:
    """The Cartesian product of a dict of value lists, or a list of parameter dicts as given."""
    if isinstance(grid, Mapping):
        if not grid:
            raise ValueError("the grid names no parameter")
        names = list(grid)
        values = [list(v) for v in grid.values()]
        for name, vals in zip(names, values):
            if not vals:
                raise ValueError(f"grid[{name!r}] is empty")
        return [dict(zip(names, combo)) for combo in itertools.product(*values)]
    points = [dict(p) for p in grid]
    if not points:
        raise ValueError("the grid is empty")
    return points


class _Guarded:
    """Calls ``fn(**params)`` and returns ("ok", value) or ("error", message, traceback)."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, params: dict):
        try:
            return ("ok", self.fn(**params))
        except Exception as err:  # reported with its parameters, not lost
            return ("error", f"{type(err).__name__}: {err}", traceback.format_exc())


def backend_name() -> str:
    """``loky`` (local processes), ``local-dask`` or the Dask scheduler address in ``DLT_CLUSTER``."""
    value = os.environ.get("DLT_CLUSTER", "").strip()
    return value or "loky"


@contextmanager
def _parallel_backend(name: str, n_jobs: int):
    import joblib

    if name == "loky":
        with joblib.parallel_config(backend="loky", n_jobs=n_jobs):
            yield
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - distributed is in requirements.txt
        raise ValueError("DLT_CLUSTER needs the 'distributed' package (pip install distributed)") from err
    if name == "local-dask":
        cluster = LocalCluster(n_workers=max(1, n_jobs), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    else:
        if "://" not in name:
            raise ValueError(f"DLT_CLUSTER must be 'local-dask' or a scheduler address like tcp://host:8786, got {name!r}")
        cluster, client = None, Client(name)
    try:
        with joblib.parallel_config(backend="dask"):
            yield
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run(fn: Callable, grid, *, n_jobs: int | None = None, backend: str | None = None,
        progress: bool | None = None, desc: str | None = None) -> SweepResult:
    """Evaluate ``fn(**point)`` at every grid point; return the values in grid order.

    ``n_jobs=1`` (or ``backend="sequential"``) runs in this process, which is what a chapter
    at the default size wants; otherwise the points are spread over joblib workers or the
    Dask cluster named by ``DLT_CLUSTER``. A point that raises becomes a :class:`Failure`.
    """
    import joblib

    from helpers.repro import progress as bar
    from helpers.repro import quiet

    if not callable(fn):
        raise ValueError("fn must be callable")
    points = grid_points(grid)
    n_jobs = n_jobs if n_jobs is not None else (os.cpu_count() or 1)
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    name = backend or ("sequential" if n_jobs == 1 and not os.environ.get("DLT_CLUSTER") else backend_name())
    guarded = _Guarded(fn)
    show = (not quiet()) if progress is None else progress
    desc = desc or getattr(fn, "__name__", "sweep")

    if name == "sequential":
        outcomes = [guarded(p) for p in bar(points, desc=desc, disable=not show)]
    else:
        with _parallel_backend(name, n_jobs):
            gen = joblib.Parallel(return_as="generator")(joblib.delayed(guarded)(p) for p in points)
            outcomes = list(bar(gen, total=len(points), desc=desc, disable=not show))

    values, failures = [], []
    for params, outcome in zip(points, outcomes):
        if outcome[0] == "ok":
            values.append(outcome[1])
        else:
            values.append(None)
            failures.append(Failure(params, outcome[1], outcome[2]))
    return SweepResult(points, values, failures, backend=name)


def cache_dir() -> Path:
    """The folder of cached results: ``DLT_CACHE`` or ``.dlt_cache`` in the repository."""
    return Path(os.environ.get("DLT_CACHE") or ROOT / ".dlt_cache")


def cached(fn: Callable, when: bool | None = None) -> Callable:
    """``fn`` memoised on disk (joblib.Memory): same code and arguments -> the stored result.

    ``when=None`` caches only at paper scale (``DLT_SCALE=paper``), where runs are long; the
    default-size chapters then never touch the disk. ``when=True`` always caches.
    """
    import joblib

    from helpers.repro import scale

    if when is None:
        when = scale() == "paper"
    if not when:
        return fn
    memory = joblib.Memory(location=str(cache_dir()), verbose=0)
    return memory.cache(fn)
