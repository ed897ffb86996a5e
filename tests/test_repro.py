import random

import numpy as np
import pytest

from helpers import repro


def test_setup_seeds_and_reads_scale(monkeypatch):
    monkeypatch.delenv("DLT_SCALE", raising=False)
    cfg = repro.setup(seed=3, use_torch=False)
    a = (random.random(), np.random.rand())
    repro.setup(seed=3, use_torch=False)
    assert (random.random(), np.random.rand()) == a
    assert cfg.scale == "ci" and not cfg.paper and cfg.device == "cpu"


def test_setup_seeds_torch():
    torch = pytest.importorskip("torch")
    repro.setup(seed=5, use_torch=True)
    x = torch.rand(3)
    cfg = repro.setup(seed=5, use_torch=True)
    assert torch.equal(torch.rand(3), x)
    assert torch.get_num_threads() == 1
    assert cfg.device in ("cpu", "cuda")


def test_pick_follows_scale(monkeypatch):
    monkeypatch.setenv("DLT_SCALE", "paper")
    assert repro.pick(ci=1, paper=2) == 2 and repro.scale() == "paper"
    monkeypatch.setenv("DLT_SCALE", "ci")
    assert repro.pick(ci=1, paper=2) == 1


@pytest.mark.parametrize("var, value", [("DLT_SCALE", "huge"), ("DLT_DEVICE", "tpu")])
def test_bad_switches_raise(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=var):
        repro.scale() if var == "DLT_SCALE" else repro.device(use_torch=False)


@pytest.mark.parametrize("kwargs", [dict(seed=-1), dict(seed=1.5), dict(threads=0)])
def test_bad_setup_arguments(kwargs):
    with pytest.raises(ValueError):
        repro.setup(use_torch=False, **kwargs)


def test_rng():
    g = repro.rng(7)
    assert repro.rng(g) is g
    assert repro.rng(7).random() == np.random.default_rng(7).random()
    with pytest.raises(ValueError):
        repro.rng(None)


def test_progress_silent_under_pytest():
    bar = repro.progress(range(3))
    assert bar.disable and list(bar) == [0, 1, 2]


def test_sizes_pick_by_scale_and_render(monkeypatch):
    monkeypatch.setenv("DLT_SCALE", "ci")
    S = repro.sizes(restarts=(40, 1000, "1000 in the paper"), widths=((8, 16), tuple(2**k for k in range(3, 14))))
    assert S.restarts == 40 and S["widths"] == (8, 16)
    html = S._repr_html_()
    assert "default (in use)" in html and "1000 in the paper" in html and "8, 16, ..., 8192 (11 values)" in html
    monkeypatch.setenv("DLT_SCALE", "paper")
    P = repro.sizes(restarts=(40, 1000))
    assert P.restarts == 1000 and "DLT_SCALE=paper (in use)" in P._repr_html_()
    with pytest.raises(AttributeError, match="restarts"):
        _ = P.restart
    with pytest.raises(ValueError):
        repro.sizes(bad=(1,))
    with pytest.raises(ValueError):
        repro.sizes()


@pytest.mark.parametrize("bad", ["tpu", "gpu", "cpu:0", "cuda:x", "", "mps"])
def test_torch_device_rejects_unknown_devices(bad):
    with pytest.raises(ValueError, match="device must be"):
        repro.torch_device(bad)


def test_torch_device_defaults_and_cuda(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("DLT_DEVICE", "cpu")
    assert repro.torch_device(None) == "cpu" and repro.torch_device(" CPU ") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU"):
            repro.torch_device("cuda:0")
