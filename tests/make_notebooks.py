"""Convert the book's MyST chapters into .ipynb files for nbval.

    python tests/make_notebooks.py OUTDIR [book/02_landscape.md ...]

Only files with a jupytext header (i.e. notebooks) are converted; the output notebooks
carry no outputs (the chapter's own assertions are what nbval checks).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]


def chapter_sources(paths=None) -> list[Path]:
    paths = [Path(p).resolve() for p in paths] if paths else sorted((ROOT / "book").glob("*.md"))
    return [p for p in paths if is_notebook(p)]


def is_notebook(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return text.startswith("---") and "jupytext:" in text.split("---", 2)[1]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.ipynb"):
        old.unlink()
    for src in chapter_sources(argv[1:]):
        nb = jupytext.read(src)
        # nbval starts the kernel in the notebook's folder; the chapters expect the book folder
        jupytext.write(nb, out / f"{src.stem}.ipynb")
        print(f"{src.relative_to(ROOT)} -> {out / (src.stem + '.ipynb')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
