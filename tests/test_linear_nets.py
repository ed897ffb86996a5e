"""helpers.linear_nets against independent references: SVD closed forms, finite differences,
plain logistic-regression GD, and the widget at every grid point."""

import numpy as np
import pytest
from scipy.linalg import svdvals
from scipy.stats import ortho_group

from helpers import implicit_bias as ib
from helpers import linear_nets as ln
from helpers import widgets


def test_rank1_ratio_closed_forms():
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal(5), rng.standard_normal(7)
    assert ln.rank1_ratio(np.outer(u, v)) == pytest.approx(1.0, abs=1e-12)
    assert ln.rank1_ratio(np.eye(4)) == pytest.approx(0.5, abs=1e-12)
    for _ in range(5):
        W = rng.standard_normal((6, 3))
        s = svdvals(W)
        assert ln.rank1_ratio(W) == pytest.approx(s[0] / np.sqrt(np.sum(s**2)), rel=1e-12)
    with pytest.raises(ValueError, match="zero matrix"):
        ln.rank1_ratio(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="2-D"):
        ln.rank1_ratio(np.ones(3))


def test_alignment_of_constructed_layers():
    rng = np.random.default_rng(1)
    Q = ortho_group.rvs(4, random_state=2)
    for theta in [0.0, 0.3, 1.0, np.pi / 2]:
        # W1 = 3 u1 v1^T + small, W2 = 2 a w^T with w at angle theta from u1 in span(q0, q1)
        V = ortho_group.rvs(5, random_state=3)
        W1 = 3 * np.outer(Q[:, 0], V[:, 0]) + 0.1 * np.outer(Q[:, 2], V[:, 1])  # an exact SVD
        w = np.cos(theta) * Q[:, 0] + np.sin(theta) * Q[:, 1]
        W2 = 2 * np.outer(rng.standard_normal(3), w)
        W3 = rng.standard_normal((1, 3))
        a = ln.alignment([W1, W2, W3])
        assert a.shape == (2,)
        assert a[0] == pytest.approx(abs(np.cos(theta)), abs=1e-10)
        U2 = np.linalg.svd(W2)[0][:, 0]
        assert a[1] == pytest.approx(abs(U2 @ W3.ravel()) / np.linalg.norm(W3), abs=1e-10)
    with pytest.raises(ValueError, match="do not compose"):
        ln.alignment([np.ones((3, 2)), np.ones((1, 4))])
    with pytest.raises(ValueError, match="two layers"):
        ln.alignment([np.ones((3, 2))])
    with pytest.raises(ValueError, match="zero"):
        ln.alignment([np.zeros((3, 2)), np.ones((1, 3))])


def test_chain_gradients_by_finite_differences():
    rng = np.random.default_rng(3)
    Ws = [rng.standard_normal((4, 3)), rng.standard_normal((5, 4)), rng.standard_normal((1, 5))]
    g = rng.standard_normal(3)
    beta = ln._chain_forward(Ws)
    np.testing.assert_allclose(beta, (Ws[2] @ Ws[1] @ Ws[0]).ravel(), atol=1e-12)
    grads = ln._chain_backward(Ws)(Ws, g)
    eps = 1e-6
    for k, W in enumerate(Ws):
        num = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            Wp = [x.copy() for x in Ws]
            Wm = [x.copy() for x in Ws]
            Wp[k][idx] += eps
            Wm[k][idx] -= eps
            num[idx] = (g @ ln._chain_forward(Wp) - g @ ln._chain_forward(Wm)) / (2 * eps)
        np.testing.assert_allclose(grads[k], num, atol=1e-7)


def test_depth_one_is_logistic_regression():
    X, y = ln.random_separable(30, 4, seed=5)
    path = ln.deep_linear_gd(X, y, depth=1, width=7, init_scale=0.2, lr=0.5, steps=300, seed=4, record=[0, 10, 300])
    w0 = path.layers[0][0].ravel()
    ref = ib.gd_logistic(X, y, 0.5, 300, w0=w0, record=[0, 10, 300], average=True)
    np.testing.assert_allclose(path.beta, ref.w, atol=1e-12)
    np.testing.assert_allclose(path.loss, ref.loss, rtol=1e-12)
    np.testing.assert_allclose(path.angle, ref.angle, atol=1e-10)


def test_deep_linear_aligns_on_small_problem():
    X, y = ln.random_separable(20, 4, seed=0)
    path = ln.deep_linear_gd(X, y, depth=3, width=5, init_scale=0.05, lr=1.0, steps=3000, seed=0, record=6)
    assert [W.shape for W in path.final_layers] == [(5, 4), (5, 5), (1, 5)]
    ratios, aligns, norms = ln.layer_diagnostics(path)
    assert ratios[-1].min() > 0.98 and aligns[-1].min() > 0.999
    assert path.loss[-1] < 1e-2 * path.loss[0] and not path.diverged
    # the product direction is the SVM's (up to the slow 1/ln t rate)
    assert path.angle[-1] < 0.2
    # Frobenius norms grow together
    assert norms[-1].max() / norms[-1].min() < 1.05


def test_exp_loss_and_normalized_steps():
    X, y = ln.random_separable(20, 3, seed=2)
    Ws = [np.full((1, 3), 0.1)]
    fwd, bwd = ln._chain_forward, ln._chain_backward(Ws)
    p = ln.train_linear_parametrization(X, y, Ws, fwd, bwd, lr=0.1, steps=1, record=[0, 1], loss="exp",
                                        normalized=True)
    b0 = np.full(3, 0.1)
    e = np.exp(-y * (X @ b0))
    grad = -(X.T @ (y * e)) / len(y)
    np.testing.assert_allclose(p.beta[1], b0 - 0.1 / e.mean() * grad, atol=1e-13)


def test_divergence_is_reported():
    X, y = ln.random_separable(10, 2, seed=0)
    path = ln.deep_linear_gd(X, y, depth=4, width=3, init_scale=3.0, lr=1e6, steps=200, seed=0, record=[0, 1, 200])
    assert path.diverged and 1 <= path.diverged_at <= 200
    assert len(path.steps) == len(path.loss) == len(path.layers) >= 1
    assert np.all(np.isfinite(path.loss))


def test_deep_linear_errors():
    X, y = ln.random_separable(10, 2, seed=0)
    with pytest.raises(ValueError, match="depth"):
        ln.deep_linear_gd(X, y, 0, 3, 0.1, 0.1, 10)
    with pytest.raises(ValueError, match="hidden widths"):
        ln.deep_linear_gd(X, y, 3, [3], 0.1, 0.1, 10)
    with pytest.raises(ValueError, match="widths must be >= 1"):
        ln.deep_linear_gd(X, y, 2, 0, 0.1, 0.1, 10)
    with pytest.raises(ValueError, match="init_scale"):
        ln.deep_linear_gd(X, y, 2, 3, -0.1, 0.1, 10)
    with pytest.raises(ValueError, match="lr"):
        ln.deep_linear_gd(X, y, 2, 3, 0.1, 0.0, 10)
    with pytest.raises(ValueError, match="loss"):
        ln.train_linear_parametrization(X, y, [np.ones((1, 2))], ln._chain_forward, None, 0.1, 1, loss="hinge")
    with pytest.raises(ValueError, match="forward"):
        ln.train_linear_parametrization(X, y, [np.ones((1, 3))], ln._chain_forward, None, 0.1, 1)
    with pytest.raises(ValueError, match="separation"):
        ln.two_blobs(10, -1.0)
    with pytest.raises(ValueError, match="positive integers"):
        ln.random_separable(0, 3)


def test_data_generators():
    X, y = ln.soudry_data()
    assert X.shape == (10, 2) and set(y) == {-1.0, 1.0}
    X, y = ln.random_separable(40, 10, seed=1)
    assert ib.max_margin_direction(X, y).shape == (10,)
    X1, y1 = ln.two_blobs(40, 2.0, seed=0)
    X2, _ = ln.two_blobs(40, 2.0, seed=0)
    np.testing.assert_array_equal(X1, X2)
    assert (y1 == 1).sum() == 20


def test_widget_every_grid_point():
    spec = widgets.REGISTRY["ch07-deep-linear"]()
    assert spec.n_frames <= 40
    for params in spec.points():
        fig = widgets.render(spec, params, strict=True)
        assert fig is not None


# ----------------------------------------------------------------------------- batched runs
def test_batch_matches_separate_runs():
    X, y = ln.random_separable(15, 4, seed=2)
    scales, seeds = [0.05, 0.3, 0.1], [0, 0, 5]
    batch = ln.deep_linear_gd_batch(X, y, 3, [5, 4], scales, 0.5, 400, seeds=seeds, record=[0, 7, 100, 400])
    assert len(batch) == 3
    for path, sc, sd in zip(batch, scales, seeds):
        ref = ln.deep_linear_gd(X, y, 3, [5, 4], sc, 0.5, 400, seed=sd, record=[0, 7, 100, 400])
        np.testing.assert_array_equal(path.steps, ref.steps)
        np.testing.assert_allclose(path.beta, ref.beta, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(path.loss, ref.loss, rtol=1e-12)
        np.testing.assert_allclose(path.angle, ref.angle, atol=1e-10)
        for Wb, Wr in zip(path.final_layers, ref.final_layers):
            np.testing.assert_allclose(Wb, Wr, rtol=1e-12, atol=1e-14)
        assert path.diverged_at is None


def test_batch_scalar_broadcast_and_divergence():
    X, y = ln.random_separable(10, 2, seed=0)
    runs = ln.deep_linear_gd_batch(X, y, 4, 3, [0.1, 3.0], 1e6, 200, seeds=0, record=[0, 1, 200])
    ref = ln.deep_linear_gd(X, y, 4, 3, 3.0, 1e6, 200, seed=0, record=[0, 1, 200])
    assert runs[1].diverged and ref.diverged and np.all(np.isfinite(runs[1].loss))
    many = ln.deep_linear_gd_batch(X, y, 2, 3, 0.1, 0.5, 20, seeds=range(4), record=3)
    assert len(many) == 4 and not np.allclose(many[0].beta, many[1].beta)


def test_batch_errors():
    X, y = ln.random_separable(10, 2, seed=0)
    with pytest.raises(ValueError, match="same length"):
        ln.deep_linear_gd_batch(X, y, 2, 3, [0.1, 0.2], 0.1, 10, seeds=[0, 1, 2])
    with pytest.raises(ValueError, match="seeds must be non-negative"):
        ln.deep_linear_gd_batch(X, y, 2, 3, 0.1, 0.1, 10, seeds=[-1])
    with pytest.raises(ValueError, match="non-empty"):
        ln.deep_linear_gd_batch(X, y, 2, 3, [], 0.1, 10)
    with pytest.raises(ValueError, match="lr"):
        ln.deep_linear_gd_batch(X, y, 2, 3, 0.1, -1.0, 10)
    with pytest.raises(ValueError, match="depth"):
        ln.deep_linear_gd_batch(X, y, 0, 3, 0.1, 0.1, 10)
