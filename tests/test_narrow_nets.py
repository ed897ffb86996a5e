import numpy as np
import pytest

from helpers import narrow_nets as nn_
from helpers import repro

repro.set_threads(1, use_torch=True)  # tiny problems: one thread is faster and deterministic


def test_unit_ball_data_geometry():
    data = nn_.unit_ball_data(2000, 0)
    r = np.linalg.norm(data.X, axis=1)
    assert data.X.shape == (2000, 2) and data.y.sum() == 1000
    assert r[data.y == 1].max() <= 1 and r[data.y == 0].min() >= 2 and r[data.y == 0].max() <= 3
    # uniform in area: the fraction of positives inside radius 1/2 is about 1/4
    assert abs(np.mean(r[data.y == 1] < 0.5) - 0.25) < 0.04
    assert np.array_equal(nn_.unit_ball_data(10, 3).X, nn_.unit_ball_data(10, 3).X)


def test_ray_test_on_closed_forms():
    disc = lambda X: 1.0 - np.linalg.norm(X, axis=1)  # bounded positive region, radius 1
    R = nn_.decision_region_unbounded(disc, n_rays=64)
    assert not R.unbounded and np.allclose(R.exit_radius, 1.0, atol=1e-6)
    half = lambda X: X[:, 0] + 0.5  # half-plane: unbounded, escapes for x > 0 directions
    R = nn_.decision_region_unbounded(half, n_rays=360)
    assert R.unbounded and abs(R.escape_fraction - 0.5) < 0.01
    # where the ray does exit, it exits at x = -0.5, i.e. r = 0.5 / |cos|
    fin = np.isfinite(R.exit_radius)
    assert np.allclose(R.exit_radius[fin], 0.5 / np.abs(np.cos(R.angles[fin])), atol=1e-5)
    empty = lambda X: -np.ones(len(X))
    R = nn_.decision_region_unbounded(empty, n_rays=8)
    assert not R.unbounded and np.all(R.exit_radius == 0)
    # a positive ring far out is not connected to the origin: no escape, exit at radius 1
    ring = lambda X: np.maximum(1 - np.linalg.norm(X, axis=1), np.linalg.norm(X, axis=1) - 10)
    R = nn_.decision_region_unbounded(ring, n_rays=16)
    assert not R.unbounded and np.all(R.far_positive)


def test_training_resnet1_and_batched_equals_single():
    tr, te = nn_.unit_ball_data(300, 0), nn_.unit_ball_data(500, 1)
    many = nn_.train_classifiers("resnet1", 6, 1, tr, 250, [0, 1], lr=0.02, test=te)
    one = nn_.train_classifier("resnet1", 6, 1, tr, 250, 1, lr=0.02, test=te)
    assert np.allclose(many[1].loss, one.loss, rtol=1e-9)
    assert many[0].n_params == 6 * (2 + 1 + 2) + 3
    assert max(r.test_acc for r in many) >= 0.97
    # the model agrees with a hand-written forward pass (numpy) of its parameters
    p = {k: v.detach().numpy()[0] for k, v in one.model.p.items()}
    X = te.X[:20]
    x = X.copy()
    for k in range(6):
        x = x + np.maximum(x @ p["U"][k].T + p["b"][k], 0) @ p["V"][k].T
    assert np.allclose(one.predict(X), x @ p["w"] + p["c"])


def test_fc_width_d_is_never_bounded_and_nonempty():
    tr = nn_.unit_ball_data(300, 0)
    for r in nn_.train_classifiers("fc", 3, 2, tr, 200, [0, 1, 2], lr=0.02):
        R = nn_.decision_region_unbounded(r, n_rays=180)
        assert R.unbounded or np.all(R.exit_radius == 0)
        fc_params = 2 * 3 + 2 * 3 + 2 * 3 + 3  # (2x2 + 2) per layer, then 2 + 1
        assert r.n_params == fc_params


def test_divergence_is_reported():
    tr = nn_.unit_ball_data(50, 0)
    # a huge step overflows the weights: the loss turns non-finite at step 1
    r = nn_.train_classifier("resnet1", 3, 1, tr, 20, 0, lr=1e300)
    assert r.diverged and r.diverged_at == 1 and np.isnan(r.train_acc) and len(r.loss) == 1
    tr.X[0] = np.nan
    with pytest.raises(ValueError):
        nn_.train_classifier("fc", 2, 2, tr, 10, 0)


def test_errors():
    tr = nn_.unit_ball_data(20, 0)
    with pytest.raises(ValueError):
        nn_.train_classifier("cnn", 2, 1, tr, 10, 0)
    with pytest.raises(ValueError):
        nn_.train_classifier("fc", 0, 1, tr, 10, 0)
    with pytest.raises(ValueError):
        nn_.train_classifier("fc", 2, 1, tr, 10, 0, lr=-1.0)
    with pytest.raises(ValueError):
        nn_.train_classifier("fc", 2, 1, nn_.Dataset(tr.X, tr.y * 2), 10, 0)
    with pytest.raises(ValueError):
        nn_.unit_ball_data(1, 0)
    with pytest.raises(ValueError):
        nn_.unit_ball_data(10, 0, r_out=(3.0, 2.0))
    with pytest.raises(ValueError):
        nn_.decision_region_unbounded(lambda X: X[:, 0], r_max=-1.0)
    with pytest.raises(ValueError):
        nn_.decision_region_unbounded(lambda X: X[:, 0], n_rays=0)


def test_device_argument_and_dlt_device(monkeypatch):
    import torch

    data = nn_.unit_ball_data(40, seed=0)
    default = nn_.train_classifiers("resnet1", 2, 1, data, 20, [0, 1], lr=0.02)
    monkeypatch.setenv("DLT_DEVICE", "cpu")
    env = nn_.train_classifiers("resnet1", 2, 1, data, 20, [0, 1], lr=0.02)
    explicit = nn_.train_classifier("resnet1", 2, 1, data, 20, 1, lr=0.02, device="cpu")
    np.testing.assert_array_equal(default[1].loss, env[1].loss)
    np.testing.assert_allclose(explicit.loss, default[1].loss, rtol=1e-12)
    assert all(p.device.type == "cpu" for p in explicit.model.parameters())
    with pytest.raises(ValueError, match="device must be"):
        nn_.train_classifiers("fc", 2, 2, data, 5, [0], device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU"):
            nn_.train_classifiers("fc", 2, 2, data, 5, [0], device="cuda")
