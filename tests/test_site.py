"""Checks of the built book (_build/html, made by `make book`): offline, math, widgets, browser.

The browser checks drive Debian's Chromium through Selenium over a local HTTP server: every
page loads with no console errors and no failed requests, its math is typeset, its images
load, and on widget pages moving a slider of the pre-rendered fallback changes the figure.
Screenshots of every page (desktop and phone width) go to _build/screenshots/.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
pytestmark = pytest.mark.site


def chapter_stems() -> list[str]:
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [f.split("/")[-1] for f in files]


def page(stem: str) -> Path:
    return HTML / "book" / f"{stem}.html"


def has_widget(stem: str) -> bool:
    return "widgets.explore(" in (ROOT / "book" / f"{stem}.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module", autouse=True)
def built():
    if not (HTML / "index.html").exists():
        pytest.fail("no built book in _build/html: run `make book` first (`make test` does)")


class _Text(HTMLParser):
    """Collects the text a reader sees, outside scripts, code and typeset math."""

    SKIP = {"script", "style", "pre", "code", "textarea"}

    def __init__(self):
        super().__init__()
        self.stack: list[bool] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "img", "meta", "link", "input", "hr", "source", "wbr"):
            return
        classes = dict(attrs).get("class") or ""
        skip = tag in self.SKIP or "math" in classes.split()
        self.stack.append(skip or (self.stack[-1] if self.stack else False))

    def handle_endtag(self, tag):
        if self.stack and tag not in ("br", "img", "meta", "link", "input", "hr", "source", "wbr"):
            self.stack.pop()

    def handle_data(self, data):
        if not (self.stack and self.stack[-1]):
            self.chunks.append(data)


@pytest.mark.parametrize("stem", chapter_stems())
def test_page_loads_nothing_from_the_internet(stem):
    html = page(stem).read_text(encoding="utf-8")
    remote = re.findall(r'<script[^>]+src="((?:https?:)?//[^"]+)"', html)
    remote += re.findall(r'<link[^>]+rel="stylesheet"[^>]+href="((?:https?:)?//[^"]+)"', html)
    remote += re.findall(r'<link[^>]+href="((?:https?:)?//[^"]+)"[^>]+rel="stylesheet"', html)
    assert not remote, f"{stem} loads remote resources: {remote}"


@pytest.mark.parametrize("stem", chapter_stems())
def test_no_raw_math_left(stem):
    parser = _Text()
    parser.feed(page(stem).read_text(encoding="utf-8"))
    text = "".join(parser.chunks)
    leftovers = re.findall(r"\$[^$\s][^$\n]{0,80}\$|\\\(|\\\[|\\begin\{", text)
    assert not leftovers, f"{stem} shows untypeset math: {leftovers[:5]}"


def is_notebook_page(stem: str) -> bool:
    return (ROOT / "book" / f"{stem}.md").read_text(encoding="utf-8").startswith("---")


@pytest.mark.parametrize("stem", [s for s in chapter_stems() if s != "intro" and has_widget(s)])
def test_widget_state_is_embedded(stem):
    html = page(stem).read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" in html, f"{stem}: no widget state in the page"
    assert '"StackModel"' in html and '"LinkModel"' in html, f"{stem}: no pre-rendered, linked frames"
    assert "widgets/embed-amd.js" in html


@pytest.mark.parametrize("stem", [s for s in chapter_stems() if is_notebook_page(s)])
def test_page_offers_notebook_and_markdown(stem):
    html = page(stem).read_text(encoding="utf-8")
    for ext in ("ipynb", "md"):
        assert f"_sources/book/{stem}.{ext}" in html, f"{stem}: no download of the .{ext}"
        assert (HTML / "_sources" / "book" / f"{stem}.{ext}").exists()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag in ("img", "script") and a.get("src"):
            self.hrefs.append(a["src"])
        if tag == "link" and a.get("href"):
            self.hrefs.append(a["href"])


def _parse_links(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_internal_links_resolve():
    """A link checker over the whole built site: every local link and anchor exists."""
    pages = sorted(p for p in HTML.rglob("*.html") if p.relative_to(HTML).parts[0] not in ("_static", "_sources"))
    parsed = {p.resolve(): _parse_links(p) for p in pages}
    broken = []
    for path, links in parsed.items():
        for href in links.hrefs:
            if re.match(r"^(https?:|mailto:|javascript:|data:|#$)", href) or href.startswith("//"):
                continue
            target, _, fragment = href.partition("#")
            target = target.split("?", 1)[0]
            dest = (path.parent / target).resolve() if target else path
            if dest.is_dir():
                dest = dest / "index.html"
            if not dest.exists():
                broken.append(f"{path.relative_to(HTML.resolve())}: {href}")
                continue
            if fragment and dest.suffix == ".html":
                ids = parsed[dest].ids if dest in parsed else _parse_links(dest).ids
                if fragment not in ids:
                    broken.append(f"{path.relative_to(HTML.resolve())}: {href} (no such anchor)")
    assert not broken, f"{len(broken)} broken links:\n" + "\n".join(broken[:30])


def test_student_edition_has_exercises_without_solutions():
    """`make student` (run by `make test`) builds the book with every solution removed."""
    student = ROOT / "_build" / "student" / "_build" / "html" / "book"
    if not student.exists():
        pytest.fail("no student edition: run `make student` (make test does)")
    for stem in chapter_stems():
        if not is_notebook_page(stem) or not stem[:2].isdigit():
            continue
        full = page(stem).read_text(encoding="utf-8")
        edition = (student / f"{stem}.html").read_text(encoding="utf-8")
        assert 'class="solution' in full, f"{stem}: the full book shows solutions"
        assert 'class="solution' not in edition, f"{stem}: the student edition still has solutions"
        assert edition.count("exercise admonition") == full.count("exercise admonition") >= 3


def test_pdf_has_every_chapter():
    """`make pdf` prints every page of the toc into one PDF (skipped where it was not built)."""
    pdf = ROOT / "_build" / "pdf" / "book.pdf"
    if not pdf.exists():
        pytest.skip("no _build/pdf/book.pdf (make pdf needs chromium)")
    from pypdf import PdfReader

    reader = PdfReader(str(pdf))
    outline = [item.title for item in reader.outline if not isinstance(item, list)]
    assert outline == chapter_stems(), "the PDF's outline lists every page of the toc in order"
    text = _letters(" ".join((reader.pages[i].extract_text() or "") for i in range(len(reader.pages))))
    for stem in chapter_stems():
        title = _letters(_title(stem).split("(")[0])[:30]
        assert title in text, f"{stem}: its title is not in the PDF"
    assert len(reader.pages) >= 3 * len(chapter_stems())


def _letters(text: str) -> str:
    """Lower-case letters and digits only (PDF text has ligatures, hyphenation and odd spacing)."""
    import unicodedata

    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKC", text).lower())


def _title(stem: str) -> str:
    for line in (ROOT / "book" / f"{stem}.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise AssertionError(f"{stem} has no title")


# ---------------------------------------------------------------- in a real browser

IGNORED_CONSOLE = ("Got invalid theme mode", "allowUnionTypes")


@pytest.fixture(scope="module")
def server():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, script, timeout=20.0):
    import time

    end = time.time() + timeout
    while time.time() < end:
        if driver.execute_script(script):
            return True
        time.sleep(0.2)
    return False


# elements sticking out past the right edge, outside scroll boxes and the theme's off-canvas drawers
_WIDER_THAN_PHONE = """
function contained(e) {
  for (let a = e.parentElement; a; a = a.parentElement) {
    const o = getComputedStyle(a).overflowX;
    if (o === 'auto' || o === 'scroll' || o === 'hidden') return true;
    if (a.classList.contains('bd-sidebar-secondary') || a.classList.contains('bd-sidebar-primary')) return true;
  }
  return false;
}
return [...document.querySelectorAll('article *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !contained(e))
  .slice(0, 5).map(e => e.tagName + ' ' + (e.textContent || '').trim().slice(0, 40));
"""


def _visible_frame(driver) -> str | None:
    return driver.execute_script(
        "const v=[...document.querySelectorAll('.widget-image')].filter(i=>i.offsetParent!==null);"
        "return v.length ? v[0].src : null;"
    )


@pytest.mark.parametrize("stem", chapter_stems())
def test_page_in_browser(stem, server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url = f"{server}/book/{stem}.html"
    browser.get_log("browser")  # drop what earlier pages left
    browser.set_window_size(1280, 1600)
    browser.get(url)
    typeset = _wait(browser, "return !!(window.MathJax && MathJax.startup && MathJax.startup.promise)"
                             " && document.querySelectorAll('mjx-container').length >= "
                             "document.querySelectorAll('.math').length")
    assert typeset, f"{stem}: MathJax did not typeset every formula"
    broken = browser.execute_script(
        "return [...document.images].filter(i=>i.offsetParent!==null && i.complete && i.naturalWidth===0)"
        ".map(i=>i.src.slice(0,80));"
    )
    assert not broken, f"{stem}: images that failed to load: {broken}"

    if has_widget(stem):
        assert _wait(browser, "return document.querySelectorAll('.widget-image').length > 0"), f"{stem}: no widget"
        before = _visible_frame(browser)
        handles = browser.find_elements(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
        assert handles, f"{stem}: the widget has no slider"
        changed = False
        for handle in handles:
            browser.execute_script("arguments[0].scrollIntoView({block:'center'});", handle)
            handle.click()
            for key in (Keys.ARROW_RIGHT, Keys.ARROW_LEFT, Keys.ARROW_LEFT):
                handle.send_keys(key)
                if _wait(browser, f"const v=[...document.querySelectorAll('.widget-image')].filter(i=>i.offsetParent!==null);"
                                  f"return v.length && v[0].src !== {before!r};", timeout=3):
                    changed = True
                    break
            if changed:
                break
        assert changed, f"{stem}: moving a slider did not change the pre-rendered figure"

    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{stem}-desktop.png"))
    browser.set_window_size(390, 844)
    browser.refresh()  # the theme lays the page out at load: reload at phone width
    _wait(browser, "return document.querySelectorAll('mjx-container').length >= document.querySelectorAll('.math').length")
    browser.save_screenshot(str(SHOTS / f"{stem}-phone.png"))
    wide = browser.execute_script(_WIDER_THAN_PHONE)
    assert not wide, f"{stem}: content wider than a phone screen (not in a scroll box): {wide}"

    problems = [
        e["message"] for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and not any(s in e["message"] for s in IGNORED_CONSOLE)
    ]
    assert not problems, f"{stem}: console errors or failed requests:\n" + "\n".join(problems)
