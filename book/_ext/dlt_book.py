"""Small Sphinx extension of the book: offline widgets and a clean browser console.

- Serves ``_static/dlt-widgets-setup.js`` before the widget manager: it tells the widget
  bundle where its fonts live (next to it, in ``_static/widgets``) and gives MathJax 3 the
  ``MathJax.Hub.Queue`` entry point that the ipywidgets 8 bundle still calls (a MathJax 2
  API), so widget labels typeset instead of throwing.
- Drops inline scripts that another extension added twice (sphinx-thebe registers its
  configuration once per read phase; a second ``const`` declaration is a console error).
"""

from __future__ import annotations


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
    return {"parallel_read_safe": True, "parallel_write_safe": True}
