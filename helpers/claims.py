"""Checked claims: every chapter ends with a table of what it predicted and what it measured.

A :class:`Claim` compares one measured number with what the theory or the paper predicts;
:class:`Ledger` collects a chapter's claims as the experiments run, renders them as a table
and raises if any claim fails, so a claim that stops holding fails the notebook test and the
book build.

Drift between runs: when ``DLT_GOLDEN`` names a folder, ``Ledger.report`` compares each
measured number with the chapter's golden copy (``<folder>/<chapter>.json``) within the
claim's ``drift`` tolerance and raises on a change; ``DLT_UPDATE_GOLDEN=1`` rewrites it.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

OPS = ("≈", "<=", ">=", "==", "in")


def _fmt(value, digits: int = 4) -> str:
    if isinstance(value, (bool,)) or value is None:
        return str(value)
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.{digits}g}"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_fmt(v, digits) for v in value) + "]"
    try:  # numpy scalars
        return _fmt(value.item(), digits)
    except AttributeError:
        return str(value)


def _num(value):
    try:
        return value.item()
    except AttributeError:
        return value


@dataclass
class Claim:
    """One checked claim.

    ``op`` says how ``measured`` is compared with ``predicted``:

    - ``"≈"``: ``|measured - predicted| <= tol`` (or ``tol * |predicted|`` with ``rel=True``);
    - ``"<="`` / ``">="``: ``measured <= predicted + tol`` / ``measured >= predicted - tol``;
    - ``"=="``: exact equality (counts, booleans, labels);
    - ``"in"``: ``predicted`` is an interval ``(lo, hi)`` and ``lo <= measured <= hi``.

    ``drift`` is the relative change between runs that the golden-copy check tolerates.
    """

    name: str
    source: str
    predicted: object
    measured: object
    tol: float = 0.0
    op: str = "≈"
    rel: bool = False
    drift: float = 1e-6
    note: str = ""

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"op must be one of {OPS}, got {self.op!r}")
        if self.tol < 0 or self.drift < 0:
            raise ValueError("tol and drift must be >= 0")
        if self.op == "in":
            try:
                lo, hi = self.predicted
            except (TypeError, ValueError):
                raise ValueError("op='in' needs predicted=(lo, hi)") from None
            if lo > hi:
                raise ValueError(f"interval ({lo}, {hi}) is empty")
        self.measured = _num(self.measured)
        self.predicted = _num(self.predicted)

    @property
    def holds(self) -> bool:
        m, p = self.measured, self.predicted
        if self.op == "==":
            return bool(m == p)
        if not isinstance(m, (int, float)) or (isinstance(m, float) and math.isnan(m)):
            return False
        if self.op == "in":
            lo, hi = p
            return bool(lo <= m <= hi)
        if self.op == "<=":
            return bool(m <= p + self.tol)
        if self.op == ">=":
            return bool(m >= p - self.tol)
        bound = self.tol * abs(p) if self.rel else self.tol
        return bool(abs(m - p) <= bound)

    @property
    def tolerance_text(self) -> str:
        if self.op == "==":
            return "exact"
        if self.op == "in":
            return "interval"
        if self.tol == 0:
            return "—"
        return f"{_fmt(self.tol, 2)}{' rel' if self.rel else ''}"

    def row(self, digits: int = 4) -> dict:
        pred = self.predicted
        if self.op == "in":
            pred = f"in [{_fmt(pred[0], digits)}, {_fmt(pred[1], digits)}]"
        elif self.op in ("<=", ">="):
            pred = f"{self.op} {_fmt(pred, digits)}"
        else:
            pred = _fmt(pred, digits)
        return {
            "claim": self.name,
            "source": self.source,
            "predicted": pred,
            "measured": _fmt(self.measured, digits),
            "tolerance": self.tolerance_text,
            "holds": "✓" if self.holds else "✗",
        }


class ClaimsTable:
    """A rendered table of claims (HTML in notebooks and the book, text elsewhere)."""

    columns = ("claim", "source", "predicted", "measured", "tolerance", "holds")

    def __init__(self, claims, digits: int = 4):
        self.rows = [c.row(digits) for c in claims]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in self.columns) + "</tr>"
            for r in self.rows
        )
        return f'<table class="dlt-claims"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def __repr__(self) -> str:
        widths = {c: max(len(c), *(len(str(r[c])) for r in self.rows)) if self.rows else len(c) for c in self.columns}
        line = " | ".join(c.ljust(widths[c]) for c in self.columns)
        rule = "-+-".join("-" * widths[c] for c in self.columns)
        rows = [" | ".join(str(r[c]).ljust(widths[c]) for c in self.columns) for r in self.rows]
        return "\n".join([line, rule, *rows])


def table(claims, digits: int = 4) -> ClaimsTable:
    """Render claims as a table (displayed by Jupyter as HTML)."""
    return ClaimsTable(list(claims), digits)


def assert_all(claims) -> None:
    """Raise ``AssertionError`` listing every claim that does not hold."""
    claims = list(claims)
    if not claims:
        raise AssertionError("no claims were checked")
    failed = [c for c in claims if not c.holds]
    if failed:
        lines = [
            f"- {c.name}: predicted {c.row()['predicted']}, measured {_fmt(c.measured, 6)} (tol {c.tolerance_text})"
            for c in failed
        ]
        raise AssertionError(f"{len(failed)} of {len(claims)} claims fail:\n" + "\n".join(lines))


@dataclass
class Ledger:
    """The claims of one chapter, collected as its experiments run.

    >>> ledger = Ledger("01_inductive_bias")
    >>> _ = ledger.add("GD reaches the min-norm solution", "Thm 1", 0.0, 3e-12, tol=1e-8)
    >>> ledger.holds
    True
    """

    chapter: str
    claims: list = field(default_factory=list)

    def add(self, name, source, predicted, measured, **kwargs) -> Claim:
        if any(c.name == name for c in self.claims):
            raise ValueError(f"claim {name!r} was added twice; claim names identify golden values")
        claim = Claim(name, source, predicted, measured, **kwargs)
        self.claims.append(claim)
        return claim

    @property
    def holds(self) -> bool:
        return all(c.holds for c in self.claims)

    def table(self, digits: int = 4) -> ClaimsTable:
        return table(self.claims, digits)

    def measured(self) -> dict:
        """The numeric measured values by claim name (what the golden copy stores)."""
        out = {}
        for c in self.claims:
            m = c.measured
            if isinstance(m, bool) or isinstance(m, (int, float, str)):
                out[c.name] = m
        return out

    def check_drift(self, folder: str | os.PathLike) -> list[str]:
        """Compare with ``folder/<chapter>.json``; return messages for values that moved."""
        path = Path(folder) / f"{self.chapter}.json"
        if os.environ.get("DLT_UPDATE_GOLDEN", "") in ("1", "true", "yes"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.measured(), indent=1, sort_keys=True, ensure_ascii=False) + "\n")
            return []
        if not path.exists():
            return [f"no golden copy {path}; run `make golden` to create it"]
        golden = json.loads(path.read_text())
        problems = []
        by_name = {c.name: c for c in self.claims}
        for name, old in golden.items():
            if name not in by_name:
                problems.append(f"{name}: in the golden copy but no longer checked")
                continue
            new, drift = by_name[name].measured, by_name[name].drift
            if isinstance(old, (int, float)) and not isinstance(old, bool) and isinstance(new, (int, float)):
                if not abs(new - old) <= drift * max(abs(old), 1e-12) + 1e-12:
                    problems.append(f"{name}: golden {old!r}, now {new!r} (drift {drift})")
            elif new != old:
                problems.append(f"{name}: golden {old!r}, now {new!r}")
        for name in set(self.measured()) - set(golden):
            problems.append(f"{name}: not in the golden copy; run `make golden`")
        return problems

    def report(self, digits: int = 4) -> ClaimsTable:
        """Return the table, after asserting that every claim holds (and has not drifted)."""
        assert_all(self.claims)
        folder = os.environ.get("DLT_GOLDEN")
        if folder:
            from helpers.repro import scale

            if scale() == "ci":
                problems = self.check_drift(folder)
                if problems:
                    raise AssertionError("measured values drifted from the golden copy:\n" + "\n".join(problems))
        return self.table(digits)


# ---------------------------------------------------------------- numbers in the prose

GLUE_PREFIX = "application/papermill.record/"


def _ipy_display(*args, **kwargs):
    from IPython.display import display

    display(*args, **kwargs)


def glue(name: str, variable, display: bool = False) -> None:
    """Make a computed value available to the prose as ``{glue:text}`name``.

    Same output as ``myst_nb.glue`` (the display data and "scrapbook" metadata the book build
    reads) without importing nbformat and jsonschema, which costs about 1.3 s on first use.
    """
    from IPython.core.formatters import format_display_data

    mimebundle, metadata = format_display_data(variable)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = dict(name=name, mime_prefix=prefix)
    _ipy_display({prefix + k: v for k, v in mimebundle.items()}, raw=True, metadata=metadata)
