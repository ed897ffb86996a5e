"""Checks of the sources: own words, no notebooks in git, the toc, the chapters' structure, citations."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "tests"))
from make_notebooks import chapter_sources  # noqa: E402

CHAPTERS = chapter_sources()


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def test_own_words():
    """The chapters explain the talks in their own words (shared/tools/own_words.py)."""
    tool = SHARED / "tools" / "own_words.py"
    if not tool.exists():
        pytest.skip(f"{tool} is not beside this checkout")
    run = subprocess.run([sys.executable, str(tool), "book/"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, "passages repeat the source notes word for word:\n" + run.stdout[-3000:]


def test_no_notebooks_committed():
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    assert tracked.stdout.strip() == "", "sources are .md only; remove:\n" + tracked.stdout


def test_toc_lists_exactly_the_chapters():
    listed = toc_files()
    assert listed[0] == "book/intro"
    for f in listed:
        assert (ROOT / f"{f}.md").exists(), f"_toc.yml lists {f}, which does not exist"
    chapters = {f"book/{p.stem}" for p in (ROOT / "book").glob("[0-9][0-9]_*.md")}
    assert chapters <= set(listed), f"chapters missing from _toc.yml: {sorted(chapters - set(listed))}"


@pytest.mark.parametrize("path", [p for p in CHAPTERS if p.stem[:2].isdigit()], ids=lambda p: p.stem)
def test_chapter_structure(path):
    text = path.read_text(encoding="utf-8")
    assert re.search(r"^\(ch-[a-z0-9-]+\)=", text, re.M), "a label (ch-slug)= before the title"
    assert "repro.setup(" in text, "the setup cell calls helpers.repro.setup()"
    assert f'Ledger("{path.stem}")' in text, f'the claims ledger is named "{path.stem}"'
    assert "ledger.report()" in text, "a checked-claims cell"
    assert len(re.findall(r"^```\{exercise\}", text, re.M)) >= 3, "at least three exercises"
    assert len(re.findall(r"^`{3,4}\{solution\}|^```\{solution-start\}", text, re.M)) >= 3, "solutions"
    assert "{bibliography}" in text and ":filter: docname in docnames" in text
    assert "widgets.explore(" in text or path.stem == "12_panel", "at least one widget"
    golden = ROOT / "tests" / "golden" / f"{path.stem}.json"
    assert golden.exists(), f"no golden copy of the measured values: make golden CH={path.stem}"


def bib_entries() -> dict[str, str]:
    text = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    starts = [(m.group(1), m.start()) for m in re.finditer(r"@\w+\s*\{\s*([^,\s]+)\s*,", text)]
    entries = {}
    for i, (key, start) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else len(text)
        assert key not in entries, f"duplicate bibliography key {key}"
        entries[key] = text[start:end]
    return entries


def test_bibliography_entries_have_links():
    for key, body in bib_entries().items():
        assert re.search(r"\b(url|doi)\s*=", body, re.I), f"{key} needs a url or doi"


def test_every_citation_has_an_entry():
    keys = set(bib_entries())
    for path in (ROOT / "book").glob("*.md"):
        for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", path.read_text(encoding="utf-8")):
            for key in group.split(","):
                assert key.strip() in keys, f"{path.name} cites {key.strip()!r}, which is not in references.bib"
