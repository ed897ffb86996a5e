"""helpers.overparam against independent references: Monte Carlo, closed forms, autograd, cvxpy."""

import numpy as np
import pytest

from helpers import overparam as op
from helpers import widgets


# ---------------------------------------------------------------------------- ntk_gram
def test_ntk_gram_matches_monte_carlo():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    W = rng.standard_normal((400_000, 4))
    A = (X @ W.T >= 0).astype(float)
    mc = (X @ X.T) * (A @ A.T) / W.shape[0]
    np.testing.assert_allclose(op.ntk_gram(X), mc, atol=5e-3)


def test_ntk_gram_closed_forms():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]])
    H = op.ntk_gram(X)
    assert H[0, 0] == pytest.approx(0.5)  # x.x = 1: (pi - 0) / 2 pi
    assert H[0, 1] == pytest.approx(0.0)  # orthogonal
    assert H[0, 2] == pytest.approx(0.0)  # opposite: never both active
    assert H[0, 3] == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    Y = rng.standard_normal((10, 5))
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    assert np.linalg.eigvalsh(op.ntk_gram(Y))[0] > 0  # positive definite for non-parallel inputs


def test_ntk_gram_errors():
    with pytest.raises(ValueError, match="unit norm"):
        op.ntk_gram(np.ones((3, 2)))
    with pytest.raises(ValueError, match="2-D"):
        op.ntk_gram(np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        op.ntk_gram(np.array([[np.nan, 1.0]]))


# ---------------------------------------------------------------------------- wide nets
def _torch_gd(X, y, width, lr, steps, seed):
    """Independent reference: the same model and init trained with torch autograd."""
    import torch

    rng = np.random.default_rng(seed)
    W0 = rng.standard_normal((width, X.shape[1]))
    a = torch.tensor(rng.choice([-1.0, 1.0], size=width))
    W = torch.tensor(W0, requires_grad=True)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    res = []
    for t in range(steps + 1):
        u = torch.relu(Xt @ W.T) @ a / np.sqrt(width)
        res.append((yt - u).detach().numpy())
        if t == steps:
            break
        loss = 0.5 * ((u - yt) ** 2).sum()
        (g,) = torch.autograd.grad(loss, W)
        with torch.no_grad():
            W -= lr * g
    return np.array(res), np.linalg.norm(W.detach().numpy() - W0, axis=1)


def test_train_wide_net_matches_autograd():
    X, y = op.unit_sphere_data(8, 5, seed=3)
    run = op.train_wide_net(X, y, 50, 0.3, 20, seed=4)
    R, move = _torch_gd(X, y, 50, 0.3, 20, seed=4)
    np.testing.assert_allclose(run.residuals, R, atol=1e-10)
    np.testing.assert_allclose(run.movement, move, atol=1e-10)
    assert not run.diverged


def test_kernel_residuals_closed_form():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((4, 4))
    H = B @ B.T / 4
    r0 = rng.standard_normal(4)
    K = op.kernel_residuals(H, r0, 0.1, 7)
    lam, V = np.linalg.eigh(H)
    np.testing.assert_allclose(K[7], V @ ((1 - 0.1 * lam) ** 7 * (V.T @ r0)))


def test_wide_net_is_lazy_and_diverges_cleanly():
    X, y = op.unit_sphere_data(10, 5, seed=0)
    lr = 1.0 / np.linalg.eigvalsh(op.ntk_gram(X))[-1]
    small = op.train_wide_net(X, y, 64, lr, 60, seed=0)
    big = op.train_wide_net(X, y, 4096, lr, 60, seed=0)
    assert big.kernel_distance < small.kernel_distance
    assert big.max_movement < small.max_movement
    assert np.linalg.norm(big.residuals[-1]) < 1e-2 * np.linalg.norm(big.residuals[0])
    bad = op.train_wide_net(X, y, 64, 100.0, 50, seed=0)
    assert bad.diverged and bad.diverged_at is not None


def test_lazy_scan_and_slope():
    assert op.loglog_slope([1, 2, 4], [1, 0.5, 0.25]) == pytest.approx(-1.0)
    X, y = op.unit_sphere_data(10, 5, seed=0)
    lr = 1.0 / np.linalg.eigvalsh(op.ntk_gram(X))[-1]
    scan = op.lazy_scan(X, y, [64, 256, 1024], lr, 40, seeds=[0])
    assert scan.kernel_distance.shape == (3, 1)
    assert -0.8 < scan.movement_slope < -0.2


def test_wide_net_errors():
    X, y = op.unit_sphere_data(5, 3, seed=0)
    with pytest.raises(ValueError, match="width"):
        op.train_wide_net(X, y, 0, 0.1, 10, 0)
    with pytest.raises(ValueError, match="lr"):
        op.train_wide_net(X, y, 10, -1.0, 10, 0)
    with pytest.raises(ValueError, match="steps"):
        op.train_wide_net(X, y, 10, 0.1, 0, 0)
    with pytest.raises(ValueError, match="one entry per row"):
        op.train_wide_net(X, y[:3], 10, 0.1, 10, 0)
    with pytest.raises(ValueError, match="two widths"):
        op.lazy_scan(X, y, [10], 0.1, 10, [0])
    with pytest.raises(ValueError, match="square"):
        op.kernel_residuals(np.ones((2, 3)), np.ones(2), 0.1, 3)
    with pytest.raises(ValueError, match="positive"):
        op.loglog_slope([1, 2], [0, 1])


# ---------------------------------------------------------------------------- teacher-student
def test_teacher_student_batched_equals_single_seed():
    both = op.teacher_student(5, 8, d=4, n=60, steps=40, seeds=[0, 1], n_test=50)
    one = op.teacher_student(5, 8, d=4, n=60, steps=40, seeds=[1], n_test=50)
    assert both.train_mse.shape == (2,) and both.test_mse.shape == (2,)
    np.testing.assert_allclose(both.train_mse[1], one.train_mse[0], rtol=1e-4)
    assert both.train_curve.shape[0] == 2


def test_teacher_data_matches_definition():
    X, y, Xte, yte = op.teacher_data(3, 4, 20, n_test=10, data_seed=2)
    rng = np.random.default_rng(2)
    Wt = rng.standard_normal((3, 4))
    Wt /= np.linalg.norm(Wt, axis=1, keepdims=True)
    np.testing.assert_allclose(y, np.maximum(X @ Wt.T, 0).sum(1))
    assert Xte.shape == (10, 4) and yte.shape == (10,)


def test_teacher_student_learns_and_validates():
    r = op.teacher_student(3, 12, d=3, n=200, steps=300, seeds=[0], lr=0.05, n_test=200)
    assert r.train_mse[0] < 0.05 and r.test_mse[0] < 0.1
    with pytest.raises(ValueError, match="student_width"):
        op.teacher_student(3, 0, 3, 10, 5, [0])
    with pytest.raises(ValueError, match="seed"):
        op.teacher_student(3, 4, 3, 10, 5, [])
    with pytest.raises(ValueError, match="lr"):
        op.teacher_student(3, 4, 3, 10, 5, [0], lr=0)
    with pytest.raises(ValueError, match="device"):
        op.teacher_student(3, 4, 3, 10, 5, [0], device="tpu")


def test_teacher_student_device_and_curve(monkeypatch):
    monkeypatch.setenv("DLT_DEVICE", "cpu")
    a = op.teacher_student(4, 6, d=3, n=40, steps=20, seeds=[0, 2], n_test=30, record_every=5)
    b = op.teacher_student(4, 6, d=3, n=40, steps=20, seeds=[0, 2], n_test=30, record_every=5, device="cpu")
    np.testing.assert_array_equal(a.train_mse, b.train_mse)
    assert a.train_curve.shape == (2, 4) and list(a.curve_steps) == [0, 5, 10, 15]
    assert a.train_curve.dtype == float and np.all(np.diff(a.train_curve, axis=1) < 0)


# ---------------------------------------------------------------------------- margins
def test_normalized_margin_brute_force_and_homogeneity():
    rng = np.random.default_rng(0)
    X, y = op.circle_data(15, seed=1)
    W, a = rng.standard_normal((4, 3)), rng.standard_normal(4)
    f = np.array([sum(a[r] * max(W[r] @ x, 0) for r in range(4)) for x in X])
    want = np.min(y * f) / (np.sum(W**2) + np.sum(a**2))
    assert op.normalized_margin(W, a, X, y) == pytest.approx(want)
    assert op.normalized_margin(3 * W, 3 * a, X, y) == pytest.approx(want)
    with pytest.raises(ValueError, match="shapes"):
        op.normalized_margin(W, a[:2], X, y)
    with pytest.raises(ValueError, match="theta = 0"):
        op.normalized_margin(0 * W, 0 * a, X, y)


def test_max_margin_reference_matches_cvxpy():
    import cvxpy as cp

    X, y = op.circle_data(20, seed=3)
    gamma = op.max_margin_reference(X, y, n_features=300, seed=5)
    U = np.random.default_rng(5).standard_normal((300, 3))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    Phi = np.maximum(X @ U.T, 0)
    c, g = cp.Variable(300), cp.Variable()
    cp.Problem(cp.Maximize(g), [cp.multiply(y, Phi @ c) >= g, cp.norm1(c) <= 1]).solve()
    assert gamma == pytest.approx(g.value / 2, rel=1e-5, abs=1e-7)


def test_margin_path_bounded_by_reference_and_increasing():
    X, y = op.circle_data(20, seed=0, radius=0.6)
    path = op.regularized_margin_path(X, y, 10, [1e-1, 1e-3, 1e-5], seed=0, maxiter=800)
    gamma = op.max_margin_reference(X, y, n_features=4000, seed=0)
    assert np.all(np.diff(path.margins) > 0)
    assert path.margins[-1] <= gamma * 1.05  # the LP reference is a (near-tight) upper value
    assert path.margins[-1] > 0.5 * gamma
    with pytest.raises(ValueError, match="decreasing"):
        op.regularized_margin_path(X, y, 10, [1e-3, 1e-1])
    with pytest.raises(ValueError, match="labels|label"):
        op.max_margin_reference(X, y * 2)


def test_reg_logistic_gradient_matches_finite_differences():
    X, y = op.circle_data(10, seed=2)
    rng = np.random.default_rng(0)
    th = rng.standard_normal(5 * 3 + 5)
    _, g = op._reg_logistic(th, X, y, 5, 0.1)
    h = 1e-6
    fd = [(op._reg_logistic(th + h * e, X, y, 5, 0.1)[0] - op._reg_logistic(th - h * e, X, y, 5, 0.1)[0]) / (2 * h)
          for e in np.eye(th.size)]
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- depth and rank
def test_nuclear_norm_completion_matches_cvxpy():
    import cvxpy as cp

    M, mask = op.completion_problem(12, 2, 70, seed=1)
    X = op.nuclear_norm_completion(M, mask, iters=3000)
    Z = cp.Variable(M.shape)
    cp.Problem(cp.Minimize(cp.normNuc(Z)), [cp.multiply(mask.astype(float), Z) == np.where(mask, M, 0)]).solve()
    assert np.linalg.norm(X, "nuc") == pytest.approx(np.linalg.norm(Z.value, "nuc"), rel=1e-3)
    np.testing.assert_allclose(X, Z.value, atol=5e-3)


def test_deep_factorization_gradient_and_depth_one():
    M, mask = op.completion_problem(6, 1, 20, seed=0)
    # depth 1 from zero init is least squares on the observed entries: zeros elsewhere
    run = op.deep_factorization_completion(M, mask, 1, init=0.0, lr=0.5, steps=200)
    np.testing.assert_allclose(run.X[mask], M[mask], atol=1e-8)
    np.testing.assert_allclose(run.X[~mask], 0.0)
    bad = op.deep_factorization_completion(M, mask, 2, init=1.0, lr=50.0, steps=100)
    assert bad.diverged


def test_effective_rank_and_error():
    assert op.effective_rank(np.eye(5)) == pytest.approx(5.0)
    assert op.effective_rank(np.outer([1, 2.0], [3, 4.0])) == pytest.approx(1.0)
    assert op.effective_rank(np.zeros((3, 3))) == 0.0
    M, mask = op.completion_problem(5, 1, 10, seed=0)
    assert op.completion_error(M, M, mask) == 0.0


def test_completion_errors():
    with pytest.raises(ValueError, match="rank"):
        op.completion_problem(5, 6, 10, 0)
    M, mask = op.completion_problem(5, 1, 10, seed=0)
    with pytest.raises(ValueError, match="boolean"):
        op.nuclear_norm_completion(M, mask.astype(int))
    with pytest.raises(ValueError, match="no entry"):
        op.nuclear_norm_completion(M, np.zeros_like(mask))
    with pytest.raises(ValueError, match="depth"):
        op.deep_factorization_completion(M, mask, 0)


# ---------------------------------------------------------------------------- widget
def test_widget_every_grid_point_renders():
    spec = widgets.REGISTRY["ch09-lazy"]()
    assert spec.n_frames <= 40
    for params in spec.points():
        widgets.render(spec, params, strict=True)
