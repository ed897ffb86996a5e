# The two commands a reader needs:  `make book`  and  `make test`.
# Both create (or reuse) the virtual environment .venv from requirements.txt.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONHASHSEED := 0

.PHONY: book test venv unit chapter page golden student pdf bench lint clean open

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (set PYTHON=python3.x)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## Build the book, executing every chapter (widgets pre-rendered for the static pages).
book: $(STAMP)
	DLT_WIDGETS=static DLT_QUIET=1 $(VENV)/bin/jupyter-book build . -W -n --keep-going
	@cp -r book/_static/. _build/html/_static/  # Sphinx 7.4 keeps stale copies of changed static files
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

## Run every test: unit tests, every chapter as a notebook (nbval), and checks of the built site.
test: book student
	@if command -v chromium >/dev/null 2>&1; then $(PY) tools/print_pdf.py _build/html _build/pdf/book.pdf; \
	else echo "no chromium: the PDF and the browser checks are skipped"; fi
	$(PY) tests/make_notebooks.py _build/nbtest
	DLT_GOLDEN=$(CURDIR)/tests/golden DLT_QUIET=1 $(PY) -m pytest tests _build/nbtest --nbval-lax --nbval-cell-timeout=600 -p no:cacheprovider $(PYTEST_ARGS)

## The student edition: the same book with every exercise's solution removed (_build/student/html).
student: $(STAMP)
	@mkdir -p _build/student
	@sed -e 's#^  config:#  config:\n    hide_solutions: true#' -e 's#: book/_ext#: $(CURDIR)/book/_ext#' _config.yml > _build/student/_config.yml
	DLT_WIDGETS=static DLT_QUIET=1 $(VENV)/bin/jupyter-book build . --config _build/student/_config.yml --path-output _build/student -W -n --keep-going
	@cp -r book/_static/. _build/student/_build/html/_static/
	@echo "The student edition is at file://$(CURDIR)/_build/student/_build/html/index.html"

## A PDF of the whole book, every page printed by headless Chromium in toc order: _build/pdf/book.pdf
pdf: book
	$(PY) tools/print_pdf.py _build/html _build/pdf/book.pdf

## Quicker loops while writing: unit tests only; one chapter as a notebook (CH=02_landscape).
unit: $(STAMP)
	$(PY) -m pytest tests -m 'not site' -p no:cacheprovider $(PYTEST_ARGS)

chapter: $(STAMP)
	@test -n "$(CH)" || { echo "usage: make chapter CH=02_landscape"; exit 1; }
	$(PY) tests/make_notebooks.py _build/nbtest-$(CH) book/$(CH).md
	DLT_GOLDEN=$(CURDIR)/tests/golden DLT_QUIET=1 $(PY) -m pytest _build/nbtest-$(CH) --nbval-lax --nbval-cell-timeout=600 -p no:cacheprovider

## Build one chapter as a small book (intro + CH) with the same settings, e.g. to check warnings.
page: $(STAMP)
	@test -n "$(CH)" || { echo "usage: make page CH=02_landscape"; exit 1; }
	@mkdir -p _build/page-$(CH)
	@printf 'format: jb-book\nroot: book/intro\nchapters:\n  - file: book/$(CH)\n' > _build/page-$(CH)/_toc.yml
	@sed -e 's#_build/.jupyter_cache#_build/page-$(CH)/.jupyter_cache#' -e 's#: book/_ext#: $(CURDIR)/book/_ext#' _config.yml > _build/page-$(CH)/_config.yml
	DLT_WIDGETS=static DLT_QUIET=1 $(VENV)/bin/jupyter-book build . --toc _build/page-$(CH)/_toc.yml --config _build/page-$(CH)/_config.yml --path-output _build/page-$(CH) -W -n --keep-going
	@echo "The page is at file://$(CURDIR)/_build/page-$(CH)/_build/html/book/$(CH).html"

## Rewrite the golden copies of the chapters' measured values (CH=... for one chapter).
golden: $(STAMP)
	$(PY) tests/make_notebooks.py _build/golden $(if $(CH),book/$(CH).md,)
	DLT_GOLDEN=$(CURDIR)/tests/golden DLT_UPDATE_GOLDEN=1 DLT_QUIET=1 $(PY) -m pytest _build/golden --nbval-lax --nbval-cell-timeout=600 -p no:cacheprovider -q

## Benchmarks: chapter execution times, build time, widget latency (writes benchmarks/results.md).
bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check helpers tests benchmarks

open:
	@xdg-open _build/html/index.html 2>/dev/null || echo "open file://$(CURDIR)/_build/html/index.html"

clean:
	rm -rf _build
