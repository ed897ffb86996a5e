
import pytest

from helpers import sweep


def square_plus(x, shift=0):
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x + shift


def test_grid_points_order_and_validation():
    pts = sweep.grid_points({"a": [1, 2], "b": ["x", "y", "z"]})
    assert pts[:3] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"}] and len(pts) == 6
    assert sweep.grid_points([{"a": 1}]) == [{"a": 1}]
    for bad in ({}, {"a": []}, []):
        with pytest.raises(ValueError):
            sweep.grid_points(bad)


def test_sequential_keeps_order_and_reports_failures():
    res = sweep.run(square_plus, {"x": range(5), "shift": [10]}, n_jobs=1)
    assert res.backend == "sequential"
    assert res.values == [10, 11, 14, None, 26]
    assert len(res.failures) == 1 and res.failures[0].params == {"x": 3, "shift": 10}
    assert "three is not allowed" in res.failures[0].error and "ValueError" in res.failures[0].traceback
    with pytest.raises(RuntimeError, match="three"):
        res.raise_failures()


def test_local_processes_match_sequential(monkeypatch):
    monkeypatch.delenv("DLT_CLUSTER", raising=False)
    grid = {"x": range(8), "shift": [0, 1]}
    seq = sweep.run(square_plus, grid, n_jobs=1)
    par = sweep.run(square_plus, grid, n_jobs=2)
    assert par.backend == "loky"
    assert par.values == seq.values and [f.params for f in par.failures] == [f.params for f in seq.failures]


def test_dask_local_cluster_matches_local(monkeypatch):
    """A real distributed.LocalCluster with 2 workers gives the local run's results, in order."""
    pytest.importorskip("distributed")
    monkeypatch.setenv("DLT_CLUSTER", "local-dask")
    grid = {"x": range(10), "shift": [5]}
    res = sweep.run(square_plus, grid, n_jobs=2)
    assert res.backend == "local-dask"
    monkeypatch.delenv("DLT_CLUSTER")
    assert res.values == sweep.run(square_plus, grid, n_jobs=1).values
    assert [f.params for f in res.failures] == [{"x": 3, "shift": 5}]


def test_bad_arguments(monkeypatch):
    with pytest.raises(ValueError):
        sweep.run(42, {"x": [1]})
    with pytest.raises(ValueError):
        sweep.run(square_plus, {"x": [1]}, n_jobs=0)
    monkeypatch.setenv("DLT_CLUSTER", "not-an-address")
    with pytest.raises(ValueError, match="DLT_CLUSTER"):
        sweep.run(square_plus, {"x": [1, 2]}, n_jobs=2)


def test_cache_reuses_and_invalidates(tmp_path, monkeypatch):
    """Same code and arguments: the stored result; a changed function body: recomputed."""
    import importlib
    import sys

    monkeypatch.setenv("DLT_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = tmp_path / "calls.txt"
    body = """
def slow(x):
    with open({path!r}, "a") as f:
        f.write("x")
    return x + {offset}
"""
    (tmp_path / "cachemod.py").write_text(body.format(path=str(calls), offset=1))
    mod = importlib.import_module("cachemod")
    f = sweep.cached(mod.slow, when=True)
    assert f(2) == 3 and f(2) == 3
    assert calls.read_text() == "x"  # computed once, then read from disk
    assert f(5) == 6 and calls.read_text() == "xx"  # new arguments: computed

    (tmp_path / "cachemod.py").write_text(body.format(path=str(calls), offset=100))
    sys.modules.pop("cachemod")
    importlib.invalidate_caches()
    mod2 = importlib.import_module("cachemod")
    g = sweep.cached(mod2.slow, when=True)
    assert g(2) == 102 and calls.read_text() == "xxx"  # the code changed: not the old entry


def test_cache_only_at_paper_scale_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("DLT_CACHE", str(tmp_path))
    monkeypatch.setenv("DLT_SCALE", "ci")
    assert sweep.cached(square_plus) is square_plus
    monkeypatch.setenv("DLT_SCALE", "paper")
    wrapped = sweep.cached(square_plus)
    assert wrapped is not square_plus and wrapped(2) == 4
