"""Scaling benchmark: runtime of each chapter's main experiment against its problem size.

    python benchmarks/scaling.py                 # every chapter (a few minutes on 2 cores)
    python benchmarks/scaling.py --quick         # smaller sizes, one repeat (about a minute)
    python benchmarks/scaling.py --only 2 4 11   # some chapters
    python benchmarks/scaling.py --no-speedups   # skip the batched-vs-loop comparisons

For each chapter the main experiment is timed at (at least) four problem sizes, the median of
``--repeats`` runs after one warm-up call, and the exponent ``a`` of ``time ~ size^a`` is fitted
by least squares on log time against log size. At small sizes fixed per-call costs (Python
overhead, setup) flatten the curve, so a fitted exponent is a lower estimate of the asymptotic
one. The torch experiments are timed on the CPU and, when torch sees a GPU (and
``DLT_DEVICE`` is not ``cpu``), on ``cuda`` as well.

The batched-vs-loop section times experiments over restarts, chains or seeds once as one
batched computation and once as a Python loop of single runs, and checks that both give the
same numbers (``max |diff|``).

Writes a markdown table to stdout and to ``benchmarks/scaling.md`` (``--out``), which
``benchmarks/run.py`` includes in ``benchmarks/results.md``. BLAS and torch are pinned to
``--threads`` threads (default 1, as in the chapters).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):  # helpers, and run.py beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from helpers import repro  # noqa: E402


# ----------------------------------------------------------------------------- measuring
def fit_exponent(sizes: Sequence[float], times: Sequence[float]) -> float:
    """Least-squares slope of ``log time`` against ``log size``: the ``a`` in ``time ~ size^a``."""
    x = np.asarray(sizes, dtype=float).reshape(-1)
    y = np.asarray(times, dtype=float).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"sizes and times must have the same length, got {x.size} and {y.size}")
    if x.size < 2:
        raise ValueError("fitting an exponent needs at least two (size, time) points")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise ValueError("sizes and times must be finite and positive (they are fitted on a log scale)")
    if np.unique(x).size < 2:
        raise ValueError("sizes must hold at least two different values")
    lx, ly = np.log(x), np.log(y)
    lx0 = lx - lx.mean()
    return float(lx0 @ (ly - ly.mean()) / (lx0 @ lx0))


def time_call(fn: Callable[[], object], repeats: int = 3) -> tuple[float, float]:
    """Median wall time and median process CPU time of ``repeats`` calls of ``fn()`` (seconds)."""
    if not callable(fn):
        raise ValueError("fn must be a callable taking no arguments")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    wall, cpu = [], []
    for _ in range(int(repeats)):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


# ----------------------------------------------------------------------------- the experiments
@dataclass(frozen=True)
class Experiment:
    """One chapter's main experiment: ``build(size, device)`` does the setup (data, systems) and
    returns the zero-argument call that is timed."""

    chapter: int
    name: str
    size_name: str
    sizes: tuple
    quick_sizes: tuple
    build: Callable
    settings: str = ""
    torch: bool = False


def _ch01(H, device):
    from helpers import capacity

    # loss_tol below reach: every width trains for exactly max_epochs (same work per epoch)
    return lambda: capacity.width_experiment(widths=(int(H),), n_train=300, lr=0.2, batch_size=50, max_epochs=3,
                                             loss_tol=1e-12, seed=0, device=device)


def _ch02(R, device):
    from helpers import landscape

    return lambda: landscape.teacher_student_relu(6, 6, None, None, 300, int(R), device=device)


def _ch03(N, device):
    from helpers import mean_field as mf

    return lambda: mf.sgd_two_layer(int(N), mf.PAPER["d"], 200, 2e-3, seed=0, batch=50, n_eval=1000,
                                    store_weights=False)


def _ch04(C, device):
    from helpers import langevin as lv

    x0 = np.random.default_rng(0).uniform(-2.0, 2.0, (int(C), 1))
    return lambda: lv.euler_maruyama(lv.double_well_grad, x0, 3.0, 1e-3, 1000, seed=0, n_chains=int(C),
                                     record_every=100)


def _ch05(d, device):
    from helpers import lqr

    A, B, Q, R, S0 = lqr.random_system(int(d), seed=0, scale=0.9)   # stable A: K = 0 stabilises
    K = np.zeros((B.shape[1], int(d)))

    def call():
        lqr.cost(K, A, B, Q, R, S0)
        lqr.policy_gradient(K, A, B, Q, R, S0)
    return call


def _ch06(T, device):
    from helpers import contrastive as ct

    world = ct.default_world(2.0, 0)
    return lambda: ct.train_contrastive(world.train, world.rep_dim, 1, int(T), seed=0, lr=0.02,
                                        batch_size=ct.batch_for(384))


def _ch07(T, device):
    from helpers import linear_nets as ln

    X, y = ln.random_separable(40, 10, seed=0)
    return lambda: ln.deep_linear_gd(X, y, depth=3, width=10, init_scale=0.05, lr=1.0, steps=int(T), seed=0,
                                     svm=None)


def _ch08(D, device):
    from helpers import linear_nets as ln

    X, y = ln.random_separable(5, int(D), seed=0)
    # fixed steps and no loss floor, so every size does the same number of steps
    return lambda: ln.linear_convnet_gd(X, y, depth=2, lr=0.02, steps=300, seed=0, init_scale=0.3,
                                        normalized=False, svm=None, loss_floor=0.0)


def _ch09(m, device):
    from helpers import overparam

    X, y = overparam.unit_sphere_data(n=20, d=10, seed=0)
    lr = 1.0 / np.linalg.eigvalsh(overparam.ntk_gram(X))[-1]
    return lambda: overparam.train_wide_net(X, y, int(m), lr, 100, seed=0)


def _ch10(G, device):
    import networkx as nx

    from helpers import gnn

    graphs = [nx.gnp_random_graph(12, 0.3, seed=s) for s in range(int(G))]

    def call():
        gnn.wl_partition(graphs, 3)
        gnn.gin_embeddings(graphs, 3, 16, seed=0)
    return call


def _ch11(n, device):
    from helpers import assemblies

    k = max(2, int(round(np.sqrt(n))))
    return lambda: assemblies.project(int(n), k, 0.05, 0.1, rounds=20, seed=0, method="dense")


def _ch11_sparse(n, device):
    from helpers import assemblies

    k = max(2, int(round(np.sqrt(n))))
    return lambda: assemblies.project(int(n), k, 0.01, 0.1, rounds=20, seed=0, method="sparse")


EXPERIMENTS = (
    Experiment(1, "capacity.width_experiment", "width H", (256, 512, 1024, 2048, 4096), (256, 1024, 2048, 4096),
               _ch01, "one width, 300 digits, 3 epochs of SGD (batch 50)", torch=True),
    Experiment(2, "landscape.teacher_student_relu", "restarts", (50, 100, 200, 400, 800), (25, 50, 100, 200),
               _ch02, "k = n = 6, 300 GD steps, all restarts batched", torch=True),
    Experiment(3, "mean_field.sgd_two_layer", "neurons N", (200, 400, 800, 1600, 3200), (200, 400, 800, 1600),
               _ch03, "d = 40, 200 SGD steps of batch 50"),
    Experiment(4, "langevin.euler_maruyama", "chains", (250, 1000, 4000, 16000), (250, 1000, 4000, 16000),
               _ch04, "double well, 1000 steps, dt = 1e-3"),
    Experiment(5, "lqr.cost + lqr.policy_gradient", "state dim d", (16, 32, 64, 128, 256), (16, 32, 64, 128),
               _ch05, "random system, k = d, exact (Lyapunov) cost and gradient at K = 0"),
    Experiment(6, "contrastive.train_contrastive", "SGD steps", (250, 500, 1000, 2000), (125, 250, 500, 1000),
               _ch06, "the chapter's world, 1 negative, 384 points per step"),
    Experiment(7, "linear_nets.deep_linear_gd", "GD steps", (2500, 5000, 10000, 20000), (1000, 2000, 4000, 8000),
               _ch07, "depth 3, width 10, n = 40, d = 10"),
    Experiment(8, "linear_nets.linear_convnet_gd", "input length D", (32, 64, 128, 256, 512), (32, 64, 128, 256),
               _ch08, "depth 2, 5 points, 300 GD steps"),
    Experiment(9, "overparam.train_wide_net", "width m", (256, 1024, 4096, 16384), (256, 1024, 4096, 16384),
               _ch09, "n = 20, d = 10, 100 GD steps"),
    Experiment(10, "gnn.wl_partition + gin_embeddings", "graphs", (100, 200, 400, 800, 1600), (50, 100, 200, 400),
               _ch10, "G(12, 0.3) graphs, 3 rounds, GIN width 16"),
    Experiment(11, "assemblies.project (dense)", "neurons n", (500, 1000, 2000, 4000), (250, 500, 1000, 2000),
               _ch11, "dense n x n synapses, k = sqrt(n), p = 0.05, beta = 0.1, 20 rounds"),
    Experiment(11, "assemblies.project (sparse)", "neurons n", (10000, 20000, 40000, 80000),
               (5000, 10000, 20000, 40000), _ch11_sparse,
               "rows drawn when a neuron first fires, k = sqrt(n), p = 0.01, beta = 0.1, 20 rounds"),
)


def experiments(only: Sequence[int] | None = None) -> list[Experiment]:
    """The experiments of the chapters ``only`` (all when None), in chapter order."""
    if only is None:
        return list(EXPERIMENTS)
    known = {e.chapter for e in EXPERIMENTS}
    wanted = [int(c) for c in only]
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise ValueError(f"no scaling experiment for chapter(s) {unknown}; chapters are {sorted(known)}")
    return [e for e in EXPERIMENTS if e.chapter in wanted]


def devices() -> list[str]:
    """``cpu``, plus ``cuda`` when torch sees a GPU and ``DLT_DEVICE`` does not say ``cpu``."""
    out = ["cpu"]
    if repro.device(use_torch=True) == "cuda":
        out.append("cuda")
    return out


@dataclass
class Row:
    chapter: int
    name: str
    size_name: str
    device: str
    sizes: list
    times: list          # median wall seconds per size
    cpu_times: list      # median process CPU seconds per size
    settings: str = ""

    @property
    def exponent(self) -> float:
        """Fitted on the wall times."""
        return fit_exponent(self.sizes, self.times)

    @property
    def cpu_exponent(self) -> float | None:
        """Fitted on the process CPU times (steadier when other jobs share the cores); None on a GPU."""
        if self.device != "cpu" or min(self.cpu_times) <= 0:
            return None
        return fit_exponent(self.sizes, self.cpu_times)


def run_experiment(exp: Experiment, sizes: Sequence | None = None, repeats: int = 3, device: str = "cpu") -> Row:
    """Time ``exp`` at each size (median of ``repeats`` after one warm-up call at the smallest)."""
    sizes = list(exp.sizes if sizes is None else sizes)
    if len(sizes) < 2:
        raise ValueError("give at least two sizes to fit an exponent")
    if device != "cpu" and not exp.torch:
        raise ValueError(f"{exp.name} is a numpy experiment; it only runs on the cpu")
    exp.build(sizes[0], device)()  # warm-up: imports, caches, torch initialisation
    times, cpu = [], []
    for s in sizes:
        fn = exp.build(s, device)
        w, c = time_call(fn, repeats)
        times.append(w)
        cpu.append(c)
    return Row(exp.chapter, exp.name, exp.size_name, device, sizes, times, cpu, exp.settings)


def scaling_table(quick: bool = False, only: Sequence[int] | None = None, repeats: int | None = None,
                  devices_: Sequence[str] | None = None, progress: Callable[[str], None] | None = None) -> list[Row]:
    """One :class:`Row` per experiment (and device): the sizes, median times and their exponent."""
    repeats = (1 if quick else 3) if repeats is None else repeats
    devs = list(devices_) if devices_ is not None else devices()
    rows = []
    for exp in experiments(only):
        for dev in devs if exp.torch else ["cpu"]:
            row = run_experiment(exp, exp.quick_sizes if quick else exp.sizes, repeats, dev)
            rows.append(row)
            if progress:
                progress(format_rows([row])[-1])
    return rows


# ----------------------------------------------------------------------------- batched vs loop
@dataclass
class Speedup:
    name: str
    count: int
    loop_s: float
    batched_s: float
    max_abs_diff: float
    device: str = "cpu"
    note: str = ""
    loop_cpu: float | None = None      # process CPU seconds (less sensitive to other jobs than wall time)
    batched_cpu: float | None = None
    cpu_s: float | None = None         # CPU seconds of the whole comparison, when only that is known

    @property
    def speedup(self) -> float:
        return self.loop_s / self.batched_s

    @property
    def cpu_speedup(self) -> float | None:
        if self.loop_cpu is None or self.batched_cpu is None or self.batched_cpu <= 0:
            return None
        return self.loop_cpu / self.batched_cpu


def _timed(fn):
    """``(fn(), wall seconds, process CPU seconds)``."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def teacher_student_speedup(restarts: int = 200, steps: int = 300, k: int = 6, device: str = "cpu") -> Speedup:
    """Batched restarts against a loop of single restarts (``landscape.batched_speedup`` when it exists)."""
    from helpers import landscape

    if hasattr(landscape, "batched_speedup"):
        import inspect

        wanted = dict(teacher_k=k, student_k=k, k=k, n=k, steps=steps, device=device)
        params = inspect.signature(landscape.batched_speedup).parameters
        c0 = time.process_time()
        r = landscape.batched_speedup(restarts, **{a: v for a, v in wanted.items() if a in params})
        get = (lambda key: r[key]) if isinstance(r, dict) else (lambda key: getattr(r, key))
        label = f"k = n = {k}, {steps} GD steps" if {"k", "steps"} <= set(params) else "its default k and steps"
        return Speedup(f"teacher-student restarts ({label})", restarts, float(get("loop_s")),
                       float(get("batched_s")), float(get("max_abs_diff")), device,
                       "landscape.batched_speedup: one batched call vs a loop over single seeds; diff of final losses/weights",
                       cpu_s=time.process_time() - c0)
    landscape.teacher_student_relu(k, k, None, None, 10, 2, device=device)  # warm-up
    batched, tb, cb = _timed(lambda: landscape.teacher_student_relu(k, k, None, None, steps, range(restarts),
                                                                device=device))
    loop, tl, cl = _timed(lambda: [landscape.teacher_student_relu(k, k, None, None, steps, [s], device=device)
                               for s in range(restarts)])
    diff = max(float(np.max(np.abs(one.W[0] - batched.W[i]))) for i, one in enumerate(loop))
    return Speedup(f"teacher-student restarts (k = n = {k}, {steps} GD steps)", restarts, tl, tb, diff, device,
                   "teacher_student_relu(seeds=range(R)) vs a loop over single seeds; diff of final weights", cl, cb)


def langevin_speedup(chains: int = 200, steps: int = 1000) -> Speedup:
    """Euler-Maruyama chains in one vectorised call against a loop of single chains.

    The timing uses the noisy dynamics (beta = 3); the loop draws other noise than the batched
    run, so the agreement is checked on the noiseless scheme (beta = inf) from the same starts,
    where each chain must follow the same path either way."""
    from helpers import langevin as lv

    x0 = np.random.default_rng(0).uniform(-2.0, 2.0, (chains, 1))

    def batched(beta):
        return np.asarray(lv.euler_maruyama(lv.double_well_grad, x0, beta, 1e-3, steps, seed=0, n_chains=chains,
                                            record_every=steps))

    def loop(beta):
        return np.concatenate([np.asarray(lv.euler_maruyama(lv.double_well_grad, x0[i], beta, 1e-3, steps, seed=i,
                                                            record_every=steps)) for i in range(chains)], axis=1)

    lv.euler_maruyama(lv.double_well_grad, x0, 3.0, 1e-3, 10, seed=0, n_chains=chains)  # warm-up
    _, tb, cb = _timed(lambda: batched(3.0))
    _, tl, cl = _timed(lambda: loop(3.0))
    diff = float(np.max(np.abs(batched(np.inf) - loop(np.inf))))
    return Speedup(f"Langevin chains (double well, {steps} steps)", chains, tl, tb, diff, "cpu",
                   "euler_maruyama(n_chains=C) vs a loop of single chains; diff on the noiseless paths", cl, cb)


def mean_field_speedup(seeds: int = 16, N: int = 200, steps: int = 200) -> Speedup:
    """``mean_field.sgd_two_layer`` over seeds at once against a loop of single seeds (same numbers)."""
    from helpers import mean_field as mf

    def run(seed):
        return mf.sgd_two_layer(N, mf.PAPER["d"], steps, 2e-3, seed=seed, batch=50, n_eval=1000, store_weights=False)

    run([0, 1])  # warm-up: imports, the evaluation set
    batched, tb, cb = _timed(lambda: run(list(range(seeds))))
    loop, tl, cl = _timed(lambda: [run(s) for s in range(seeds)])
    diff = float(np.max(np.abs(np.stack([r.risk for r in loop]) - batched.risk)))
    return Speedup(f"mean-field SGD seeds (N = {N}, d = 40, {steps} steps)", seeds, tl, tb, diff, "cpu",
                   "sgd_two_layer(seed=[0..S-1]) vs a loop over seeds; diff of the risk curves", cl, cb)


def speedup_table(quick: bool = False, devices_: Sequence[str] | None = None) -> list[Speedup]:
    devs = list(devices_) if devices_ is not None else devices()
    out = []
    for dev in devs:
        out.append(teacher_student_speedup(restarts=200, steps=100 if quick else 300, device=dev))
    out.append(langevin_speedup(chains=100 if quick else 200, steps=500 if quick else 1000))
    out.append(mean_field_speedup(seeds=8 if quick else 16))
    return out


# ----------------------------------------------------------------------------- markdown
def _fmt_s(t: float) -> str:
    return f"{t:.3f}" if t < 10 else f"{t:.1f}"


def format_rows(rows: Sequence[Row]) -> list[str]:
    """Markdown lines: header, separator, then one line per row."""
    lines = ["| ch. | experiment | size | device | sizes | median wall time (s) | median CPU time (s) "
             "| exponent (wall) | exponent (CPU) |",
             "|---:|---|---|---|---|---|---|---:|---:|"]
    for r in rows:
        ce = r.cpu_exponent
        lines.append(f"| {r.chapter} | {r.name} | {r.size_name} | {r.device} | {', '.join(str(s) for s in r.sizes)} | "
                     f"{', '.join(_fmt_s(t) for t in r.times)} | {', '.join(_fmt_s(t) for t in r.cpu_times)} | "
                     f"{r.exponent:.2f} | {'-' if ce is None else f'{ce:.2f}'} |")
    return lines


def format_speedups(rows: Sequence[Speedup]) -> list[str]:
    lines = ["| comparison | count | device | loop (s) | batched (s) | speedup (wall) | speedup (CPU) | max abs diff "
             "| how |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for s in rows:
        cs = s.cpu_speedup
        lines.append(f"| {s.name} | {s.count} | {s.device} | {_fmt_s(s.loop_s)} | {_fmt_s(s.batched_s)} | "
                     f"{s.speedup:.1f}x | {'-' if cs is None else f'{cs:.1f}x'} | {s.max_abs_diff:.1e} | {s.note} |")
    return lines


def machine() -> str:
    """benchmarks/run.py's description of the machine, plus the torch version and GPU."""
    from run import machine as cpu_description

    text = cpu_description()
    try:
        import torch

        text += f", torch {torch.__version__}"
        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


def report(rows: Sequence[Row], speedups: Sequence[Speedup], *, quick: bool, repeats: int, threads: int,
           load: tuple, wall: float, cpu: float) -> str:
    settings = "\n".join(f"- ch. {r.chapter} ({r.name}): {r.settings}" for r in rows if r.device == "cpu")
    parts = [
        "# Scaling benchmark\n",
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d %H:%M')}. Mode: {'quick' if quick else 'full'}; "
        f"median of {repeats} run(s) per size after a warm-up; BLAS/torch threads: {threads}. "
        f"Load average before/after: {load[0]:.2f} / {load[1]:.2f} (other jobs share the machine). "
        f"Whole benchmark: {wall:.0f} s wall, {cpu:.0f} s CPU. "
        "Command: `.venv/bin/python benchmarks/scaling.py" + (" --quick" if quick else "") + "`.\n",
    ]
    if rows:
        parts += [
            "### Runtime against problem size\n",
            "Exponent: least-squares slope of log time against log size (time ~ size^a), on the wall times and on "
            "the process CPU times; with one thread and other jobs on the cores, the CPU-time exponent is the "
            "steadier one. Fixed per-call costs flatten the curve at small sizes, so either is a lower estimate "
            "of the asymptotic exponent.\n",
            "\n".join(format_rows(rows)) + "\n",
            "Settings:\n\n" + settings + "\n",
        ]
    if speedups:
        parts += ["### Batched against a Python loop\n", "\n".join(format_speedups(speedups)) + "\n"]
    return "\n".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and one repeat (about a minute)")
    ap.add_argument("--only", type=int, nargs="+", metavar="CH", help="chapter numbers (default: all)")
    ap.add_argument("--repeats", type=int, help="runs per size (default 3, --quick 1)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/torch threads (default 1, as in the chapters)")
    ap.add_argument("--no-speedups", action="store_true", help="skip the batched-vs-loop comparisons")
    ap.add_argument("--no-table", action="store_true", help="only the batched-vs-loop comparisons")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "scaling.md"), help="markdown file ('' for none)")
    args = ap.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    try:
        experiments(args.only)
    except ValueError as err:
        ap.error(str(err))
    os.environ.setdefault("DLT_QUIET", "1")
    import torch  # noqa: F401  (so that set_threads pins torch too)

    repro.set_threads(args.threads, use_torch=True)
    repeats = args.repeats or (1 if args.quick else 3)
    load0 = os.getloadavg()[0]
    c0, t0 = time.process_time(), time.perf_counter()
    rows = [] if args.no_table else scaling_table(args.quick, args.only, repeats, progress=print)
    speed = []
    if not args.no_speedups:
        speed = speedup_table(args.quick)
        for line in format_speedups(speed)[2:]:
            print(line, flush=True)
    text = report(rows, speed, quick=args.quick, repeats=repeats, threads=args.threads,
                  load=(load0, os.getloadavg()[0]), wall=time.perf_counter() - t0, cpu=time.process_time() - c0)
    print()
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
