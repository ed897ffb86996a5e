import json

import pytest

from helpers import claims
from helpers.claims import Claim, Ledger


@pytest.mark.parametrize(
    "kwargs, holds",
    [
        (dict(predicted=1.0, measured=1.05, tol=0.1), True),
        (dict(predicted=1.0, measured=1.2, tol=0.1), False),
        (dict(predicted=100.0, measured=104.0, tol=0.05, rel=True), True),
        (dict(predicted=100.0, measured=106.0, tol=0.05, rel=True), False),
        (dict(predicted=1.0, measured=0.5, op="<="), True),
        (dict(predicted=1.0, measured=1.5, op="<="), False),
        (dict(predicted=1.0, measured=1.05, op="<=", tol=0.1), True),
        (dict(predicted=0.9, measured=0.95, op=">="), True),
        (dict(predicted=0.9, measured=0.85, op=">="), False),
        (dict(predicted=(0.3, 0.7), measured=0.5, op="in"), True),
        (dict(predicted=(0.3, 0.7), measured=0.71, op="in"), False),
        (dict(predicted=16, measured=16, op="=="), True),
        (dict(predicted=True, measured=False, op="=="), False),
        (dict(predicted=1.0, measured=float("nan"), tol=1.0), False),
    ],
)
def test_claim_holds(kwargs, holds):
    assert Claim("c", "src", **kwargs).holds is holds


def test_numpy_scalars_are_plain_numbers():
    np = pytest.importorskip("numpy")
    c = Claim("c", "s", np.float64(2.0), np.float32(2.0), tol=1e-6)
    assert type(c.measured) is float and c.holds


@pytest.mark.parametrize(
    "kwargs",
    [dict(op="~"), dict(tol=-1.0), dict(op="in", predicted=3.0), dict(op="in", predicted=(2, 1))],
)
def test_bad_claims_raise(kwargs):
    base = dict(predicted=1.0, measured=1.0)
    base.update(kwargs)
    with pytest.raises(ValueError):
        Claim("c", "s", **base)


def test_assert_all_lists_failures():
    good = Claim("good", "s", 1.0, 1.0)
    bad = Claim("bad one", "s", 1.0, 2.0, tol=0.1)
    claims.assert_all([good])
    with pytest.raises(AssertionError, match="bad one"):
        claims.assert_all([good, bad])
    with pytest.raises(AssertionError, match="no claims"):
        claims.assert_all([])


def test_table_renders_every_row():
    t = claims.table([Claim("a<b", "s", 1.0, 1.0), Claim("x", "s", (0, 1), 0.5, op="in")])
    html = t._repr_html_()
    assert html.count("<tr>") == 3 and "a&lt;b" in html
    assert "in [0, 1]" in repr(t)


def test_ledger_rejects_duplicate_names():
    ledger = Ledger("x")
    ledger.add("a", "s", 1, 1, op="==")
    with pytest.raises(ValueError, match="twice"):
        ledger.add("a", "s", 1, 1, op="==")


def test_ledger_report_raises_on_failure():
    ledger = Ledger("x")
    ledger.add("a", "s", 1.0, 3.0, tol=0.5)
    with pytest.raises(AssertionError):
        ledger.report()


def test_golden_roundtrip_and_drift(tmp_path, monkeypatch):
    ledger = Ledger("chap")
    ledger.add("value", "s", 1.0, 1.0000001, tol=1e-3, drift=1e-6)
    ledger.add("count", "s", 3, 3, op="==")
    monkeypatch.setenv("DLT_GOLDEN", str(tmp_path))
    monkeypatch.setenv("DLT_UPDATE_GOLDEN", "1")
    ledger.report()
    assert json.loads((tmp_path / "chap.json").read_text()) == {"value": 1.0000001, "count": 3}
    monkeypatch.delenv("DLT_UPDATE_GOLDEN")
    ledger.report()  # unchanged: passes

    moved = Ledger("chap")
    moved.add("value", "s", 1.0, 1.0001, tol=1e-3, drift=1e-6)  # still true, but drifted
    moved.add("count", "s", 3, 3, op="==")
    with pytest.raises(AssertionError, match="drifted"):
        moved.report()

    loose = Ledger("chap")
    loose.add("value", "s", 1.0, 1.0001, tol=1e-3, drift=1e-3)
    loose.add("count", "s", 3, 3, op="==")
    loose.report()


def test_missing_golden_copy_is_an_error(tmp_path, monkeypatch):
    ledger = Ledger("nothing-here")
    ledger.add("v", "s", 1.0, 1.0)
    monkeypatch.setenv("DLT_GOLDEN", str(tmp_path))
    with pytest.raises(AssertionError, match="make golden"):
        ledger.report()


def test_glue_matches_myst_nb(monkeypatch):
    import myst_nb.ext.glue as mg

    calls = {}
    monkeypatch.setattr(mg, "ipy_display", lambda *a, **k: calls.setdefault("myst", (a, k)))
    monkeypatch.setattr(claims, "_ipy_display", lambda *a, **k: calls.setdefault("ours", (a, k)))
    for value in (3, 0.8333333333333334, "text"):
        for display in (False, True):
            calls.clear()
            mg.glue("x", value, display=display)
            claims.glue("x", value, display=display)
            assert calls["myst"] == calls["ours"]
