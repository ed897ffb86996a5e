"""The scaling benchmark (benchmarks/scaling.py): the exponent fit and the quick table."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling.py"


@pytest.fixture(scope="module")
def scaling():
    spec = importlib.util.spec_from_file_location("dlt_scaling_bench", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_fit_exponent_recovers_a_power_law(scaling):
    n = np.array([10, 20, 40, 80, 160])
    assert scaling.fit_exponent(n, 3e-4 * n**1.5) == pytest.approx(1.5, abs=1e-12)
    assert scaling.fit_exponent(n, np.full(5, 0.2)) == pytest.approx(0.0, abs=1e-12)
    # multiplicative noise: still close, and equal to numpy's least-squares line
    t = 2e-6 * n**2.0 * np.exp(np.random.default_rng(0).normal(0, 0.05, n.size))
    assert scaling.fit_exponent(n, t) == pytest.approx(np.polyfit(np.log(n), np.log(t), 1)[0], rel=1e-10)
    assert abs(scaling.fit_exponent(n, t) - 2.0) < 0.1


@pytest.mark.parametrize("sizes, times", [([1, 2], [1.0]), ([4], [1.0]), ([1, 2], [0.0, 1.0]),
                                          ([-1, 2], [1.0, 2.0]), ([3, 3], [1.0, 2.0]), ([1, 2], [1.0, np.nan])])
def test_fit_exponent_rejects_bad_input(scaling, sizes, times):
    with pytest.raises(ValueError):
        scaling.fit_exponent(sizes, times)


def test_time_call_and_validation(scaling):
    calls = []
    wall, cpu = scaling.time_call(lambda: calls.append(1), repeats=3)
    assert len(calls) == 3 and wall >= 0 and cpu >= 0
    with pytest.raises(ValueError):
        scaling.time_call(lambda: None, repeats=0)
    with pytest.raises(ValueError):
        scaling.time_call(42)
    with pytest.raises(ValueError, match="chapter"):
        scaling.experiments([99])


def test_every_chapter_has_four_sizes(scaling):
    exps = scaling.experiments()
    assert sorted({e.chapter for e in exps}) == list(range(1, 12))
    for e in exps:
        assert len(e.sizes) >= 4 and len(e.quick_sizes) >= 4
        assert list(e.sizes) == sorted(e.sizes) and list(e.quick_sizes) == sorted(e.quick_sizes)


def test_quick_table_has_rows(scaling):
    # the two cheapest chapters (LQR cost/gradient; assemblies, dense and sparse); one repeat each
    rows = scaling.scaling_table(quick=True, only=[5, 11], devices_=["cpu"])
    assert [r.chapter for r in rows] == [5, 11, 11]
    for r in rows:
        assert len(r.times) == len(r.sizes) >= 4 and all(t > 0 for t in r.times)
        assert np.isfinite(r.exponent)
    lines = scaling.format_rows(rows)
    assert len(lines) == 5 and lines[2].startswith("| 5 | lqr.")
    text = scaling.report(rows, [], quick=True, repeats=1, threads=1, load=(0.0, 0.0), wall=1.0, cpu=1.0)
    assert text.startswith("# Scaling benchmark") and "assemblies.project" in text


def test_speedup_row_format(scaling):
    s = scaling.Speedup("demo", 10, loop_s=2.0, batched_s=0.5, max_abs_diff=0.0)
    assert s.speedup == pytest.approx(4.0)
    assert s.cpu_speedup is None and "4.0x" in scaling.format_speedups([s])[-1]
    s = scaling.Speedup("demo", 10, loop_s=2.0, batched_s=0.5, max_abs_diff=0.0, loop_cpu=3.0, batched_cpu=0.5)
    assert s.cpu_speedup == pytest.approx(6.0) and "6.0x" in scaling.format_speedups([s])[-1]
