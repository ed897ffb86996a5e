"""Print the built book (_build/html) to one PDF with headless Chromium, in table-of-contents order.

    python tools/print_pdf.py [_build/html] [_build/pdf/book.pdf]

Each page is printed after its math is typeset and its widgets are drawn (Chromium's virtual
time budget), then the pages are concatenated with pypdf. Nothing reaches the network.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]


def print_page(chromium: str, html: Path, pdf: Path) -> None:
    cmd = [
        chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
        "--allow-file-access-from-files", "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=20000", f"--print-to-pdf={pdf}", html.as_uri(),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if run.returncode or not pdf.exists():
        raise RuntimeError(f"chromium could not print {html}:\n{run.stderr[-2000:]}")


def main(html_dir: str = "_build/html", dest: str = "_build/pdf/book.pdf") -> int:
    from pypdf import PdfWriter

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("needs Debian's chromium (apt-get install chromium)", file=sys.stderr)
        return 1
    html_root, dest_path = Path(html_dir).resolve(), Path(dest).resolve()
    dest_path.parent.mkdir(parents=True, exist_ok=True)
    writer = PdfWriter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, page in enumerate(toc_pages()):
            html = html_root / f"{page}.html"
            if not html.exists():
                print(f"{html} is missing: run `make book` first", file=sys.stderr)
                return 1
            part = Path(tmp) / f"{i:02d}.pdf"
            print_page(chromium, html, part)
            writer.append(str(part), outline_item=page.split("/")[-1])
        with open(dest_path, "wb") as fh:
            writer.write(fh)
    print(f"wrote {dest_path} ({len(writer.pages)} pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
