"""Small Sphinx extension of the book: offline widgets and a clean browser console.

- Serves ``_static/dlt-widgets-setup.js`` before the widget manager: it tells the widget
  bundle where its fonts live (next to it, in ``_static/widgets``) and gives MathJax 3 the
  ``MathJax.Hub.Queue`` entry point that the ipywidgets 8 bundle still calls (a MathJax 2
  API), so widget labels typeset instead of throwing.
- Gives each chapter's bibliography its own citation keys: a paper cited in several chapters
  appears in each chapter's reference list without "duplicate citation" warnings. Authors
  write plain ``{cite}`key``; at read time the keys of page ``NN_slug`` become ``cNN-key``
  and its bibliography gets ``:keyprefix: cNN-`` and ``:labelprefix: NN.`` (sphinxcontrib-bibtex's
  recipe for citing one work in several documents).
- Drops inline scripts that another extension added twice (sphinx-thebe registers its
  configuration once per read phase; a second ``const`` declaration is a console error).
"""

from __future__ import annotations

import re

_CITE = re.compile(r"(\{cite(?::[a-z]+)?\}`)([^`]+)(`)")
_BIBLIOGRAPHY = re.compile(r"^(`{3,})\{bibliography\}[^\n]*\n", re.M)


def prefix_citations(docname: str, text: str) -> str:
    """Prefix the citation keys and the bibliography of one page (see the module docstring)."""
    stem = docname.rsplit("/", 1)[-1]
    number = stem.split("_", 1)[0]
    if not number.isdigit() or "{bibliography}" not in text:
        return text
    prefix = f"c{number}-"
    text = _CITE.sub(lambda m: m.group(1) + ",".join(prefix + k.strip() for k in m.group(2).split(",")) + m.group(3), text)
    options = f":keyprefix: {prefix}\n:labelprefix: {int(number)}.\n"
    return _BIBLIOGRAPHY.sub(lambda m: m.group(0) + options, text)


def _source_read(app, docname, source):
    source[0] = prefix_citations(docname, source[0])


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        body = getattr(script, "attributes", {}).get("body") if hasattr(script, "attributes") else None
        key = ("body", body) if body else ("src", str(script))
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    scripts[:] = kept


def setup(app):
    # priority < 500 puts it before the widget scripts that myst-nb adds to widget pages
    app.add_js_file("dlt-widgets-setup.js", priority=200)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
