"""Benchmarks of the book (not tests): chapter execution time, build time, widget latency.

    python benchmarks/run.py                 # everything, writes benchmarks/results.md
    python benchmarks/run.py --only widgets  # or: chapters, build
    python benchmarks/run.py --chapters 02_landscape 05_lqr --repeats 1

Chapter times: each chapter executed as a notebook in a fresh kernel (nbclient), with the
widgets pre-rendered as the book build does (DLT_WIDGETS=static); median of --repeats runs.
Build time: `jupyter-book build` of the whole book from an empty execution cache.
Widget latency: compute + plot + PNG of every grid point of every registered widget (what a
live slider move costs), median and 95th percentile.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from make_notebooks import chapter_sources  # noqa: E402

BUDGET_CHAPTER_S = 20.0
BUDGET_BUILD_S = 300.0
BUDGET_WIDGET_S = 0.100


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def time_chapter(src: Path, repeats: int) -> list[float]:
    import jupytext
    from nbclient import NotebookClient

    times = []
    for _ in range(repeats):
        nb = jupytext.read(src)
        client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(src.parent)}})
        t0 = time.perf_counter()
        client.execute()
        times.append(time.perf_counter() - t0)
    return times


def bench_chapters(names: list[str] | None, repeats: int) -> list[str]:
    os.environ.update(DLT_WIDGETS="static", DLT_QUIET="1")
    paths = chapter_sources([ROOT / "book" / f"{n}.md" for n in names] if names else None)
    rows = ["| chapter | median (s) | runs (s) | budget |", "|---|---:|---|---|"]
    for src in paths:
        t = time_chapter(src, repeats)
        med = statistics.median(t)
        ok = "ok" if med < BUDGET_CHAPTER_S else f"OVER {BUDGET_CHAPTER_S:.0f} s"
        rows.append(f"| {src.stem} | {med:.1f} | {', '.join(f'{x:.1f}' for x in t)} | {ok} |")
        print(rows[-1], flush=True)
    return rows


def bench_build() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cfg = (ROOT / "_config.yml").read_text().replace("_build/.jupyter_cache", str(out / "cache"))
        cfg = cfg.replace(": book/_ext", f": {ROOT / 'book' / '_ext'}")
        (out / "_config.yml").write_text(cfg)
        env = dict(os.environ, DLT_WIDGETS="static", DLT_QUIET="1")
        t0 = time.perf_counter()
        run = subprocess.run(
            [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--config", str(out / "_config.yml"),
             "--path-output", str(out), "-W", "-n", "--keep-going"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        elapsed = time.perf_counter() - t0
    status = "ok" if run.returncode == 0 else f"FAILED (exit {run.returncode})"
    over = "" if elapsed < BUDGET_BUILD_S else f", OVER {BUDGET_BUILD_S:.0f} s"
    row = f"| full build, empty cache | {elapsed:.0f} s | {status}{over} |"
    print(row, flush=True)
    if run.returncode:
        print(run.stdout[-3000:], run.stderr[-3000:])
    return ["| what | time | status |", "|---|---:|---|", row]


def bench_widgets() -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import helpers
    from helpers import repro, widgets

    for mod in pkgutil.iter_modules(helpers.__path__):
        importlib.import_module(f"helpers.{mod.name}")
    repro.setup(seed=0, use_torch="torch" in sys.modules)
    rows = ["| widget | points | median (ms) | p95 (ms) | max (ms) | budget |", "|---|---:|---:|---:|---:|---|"]
    for name in sorted(widgets.REGISTRY):
        spec = widgets.REGISTRY[name]()
        widgets.latency(spec, [spec.start()])  # warm-up: imports, caches
        t = sorted(widgets.latency(spec))
        p95 = t[min(len(t) - 1, int(round(0.95 * (len(t) - 1))))]
        med = statistics.median(t)
        ok = "ok" if p95 < BUDGET_WIDGET_S else "over 100 ms"
        rows.append(f"| {name} | {len(t)} | {1e3 * med:.0f} | {1e3 * p95:.0f} | {1e3 * t[-1]:.0f} | {ok} |")
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["chapters", "build", "widgets"], action="append")
    ap.add_argument("--chapters", nargs="*", help="chapter stems (default: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    parts = args.only or ["chapters", "widgets", "build"]
    sections = [f"# Benchmarks\n\nMachine: {machine()}. Date: {time.strftime('%Y-%m-%d')}. "
                f"Scale: {os.environ.get('DLT_SCALE', 'ci')}.\n"]
    if "chapters" in parts:
        sections.append(f"## Chapter execution (fresh kernel, widgets pre-rendered; median of {args.repeats})\n")
        sections.append("\n".join(bench_chapters(args.chapters, args.repeats)) + "\n")
    if "widgets" in parts:
        sections.append("## Widget callbacks (compute + plot + PNG, every grid point)\n")
        sections.append("\n".join(bench_widgets()) + "\n")
    if "build" in parts:
        sections.append("## Book build\n")
        sections.append("\n".join(bench_build()) + "\n")
    scaling = ROOT / "benchmarks" / "scaling.md"
    if scaling.exists():  # written by benchmarks/scaling.py (problem size vs time, batched vs loop)
        body = scaling.read_text()
        if body.startswith("# "):  # drop its own title: it becomes a section here
            body = body.split("\n", 1)[-1]
        sections.append("## Scaling (from benchmarks/scaling.py)\n\n" + body.strip() + "\n")
    text = "\n".join(sections)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
