"""Tests of helpers.landscape against independent references: finite differences (scipy),
closed forms, brute force, Monte Carlo, and eigendecompositions (scipy.linalg)."""

import math
import time
from itertools import product

import numpy as np
import pytest
import scipy.linalg
from scipy.optimize import approx_fprime

from helpers import landscape as L
from helpers import widgets


def fd_hessian(grad, x, eps=1e-6):
    """Central finite differences of a gradient function."""
    x = np.asarray(x, float)
    H = np.empty((x.size, x.size))
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = eps
        H[:, i] = (np.ravel(grad(x + e)) - np.ravel(grad(x - e))) / (2 * eps)
    return (H + H.T) / 2


# --------------------------------------------------------------------------- l2-l4

def test_l2l4_value_grad_hessian_match_finite_differences():
    rng = np.random.default_rng(0)
    for d in (1, 3, 7):
        x = rng.normal(size=d)
        assert L.l2l4(x) == pytest.approx(-np.sum(x**2) + np.sum(x**4))
        g = approx_fprime(x, L.l2l4, 1e-7)
        np.testing.assert_allclose(L.l2l4_grad(x), g, atol=1e-5)
        np.testing.assert_allclose(L.l2l4_hessian(x), fd_hessian(L.l2l4_grad, x), atol=1e-6)


def test_l2l4_batches():
    X = np.random.default_rng(1).normal(size=(5, 4, 3))
    assert L.l2l4(X).shape == (5, 4)
    assert L.l2l4_hessian(X).shape == (5, 4, 3, 3)
    np.testing.assert_allclose(L.l2l4_hessian(X)[2, 1], L.l2l4_hessian(X[2, 1]))


def test_critical_points_brute_force():
    # independent: the real roots of the cubic 4x^3 - 2x, combined coordinatewise
    roots = np.sort(np.roots([4, 0, -2, 0]).real)
    for d in (1, 2, 3, 5):
        pts = L.critical_points_l2l4(d)
        assert pts.shape == (3**d, d)
        assert len({tuple(np.round(p, 12)) for p in pts}) == 3**d
        brute = {tuple(np.round(p, 12)) for p in product(roots, repeat=d)}
        assert {tuple(np.round(p, 12)) for p in pts} == brute
        assert np.abs(L.l2l4_grad(pts)).max() < 1e-14


@pytest.mark.parametrize("d", [1, 2, 4, 6])
def test_census_matches_formula(d):
    c = L.critical_point_census(d)
    assert c.counts == {j: math.comb(d, j) * 2 ** (d - j) for j in range(d + 1)}
    for j, vals in c.values.items():
        assert vals == {round(-(d - j) / 4, 12)}
    assert c.labels["min"] == 2**d and c.labels["max"] == 1
    assert c.labels.get("saddle", 0) == 3**d - 2**d - 1


def test_classify_cases_and_errors():
    assert L.classify(np.diag([1.0, 2.0])) == ("min", 0)
    assert L.classify(np.diag([-1.0, -2.0])) == ("max", 2)
    assert L.classify(np.diag([1.0, -2.0, -3.0])) == ("saddle", 2)
    assert L.classify(np.diag([1.0, 0.0])) == ("degenerate", 0)
    assert L.classify(np.diag([-1.0, 0.0, 1.0])) == ("saddle", 1)
    assert L.classify(np.zeros((3, 3))) == ("degenerate", 0)
    Q = scipy.linalg.qr(np.random.default_rng(2).normal(size=(4, 4)))[0]
    assert L.classify(Q @ np.diag([3, -1, 2, 5.0]) @ Q.T) == ("saddle", 1)
    with pytest.raises(ValueError, match="square"):
        L.classify(np.ones((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        L.classify(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="tol"):
        L.classify(np.eye(2), tol=-1)
    with pytest.raises(ValueError, match="NaN"):
        L.classify(np.array([[np.nan, 0], [0, 1.0]]))


def test_critical_points_errors():
    for bad in (0, -1, 2.5, True, 13):
        with pytest.raises(ValueError):
            L.critical_points_l2l4(bad)


# --------------------------------------------------------------------------- GD and PGD

def test_gd_quadratic_closed_form():
    a = np.array([1.0, 3.0])
    res = L.gd(lambda x: a * x, np.array([1.0, -2.0]), 0.1, 25)
    expected = (1 - 0.1 * a) ** np.arange(26)[:, None] * np.array([1.0, -2.0])
    np.testing.assert_allclose(res.path, expected, rtol=1e-12)
    assert not res.diverged and res.steps_run == 25


def test_gd_reports_divergence():
    res = L.gd(lambda x: 4 * x**3, np.array([10.0]), 1.0, 50)
    assert res.diverged and res.diverged_at is not None
    assert np.all(np.isfinite(res.path))


def test_gd_errors():
    g = lambda x: x  # noqa: E731
    with pytest.raises(ValueError, match="lr"):
        L.gd(g, np.ones(2), 0.0, 10)
    with pytest.raises(ValueError, match="steps"):
        L.gd(g, np.ones(2), 0.1, -1)
    with pytest.raises(ValueError, match="callable"):
        L.gd(3, np.ones(2), 0.1, 1)
    with pytest.raises(ValueError, match="shape"):
        L.gd(lambda x: np.ones(3), np.ones(2), 0.1, 1)


def test_gd_from_random_starts_reaches_minima():
    X0 = np.random.default_rng(3).uniform(-1.5, 1.5, (200, 3))
    res = L.gd(L.l2l4_grad, X0, 0.05, 400, keep_path=False)
    labels = {L.classify(h, 1e-6)[0] for h in L.l2l4_hessian(res.x)}
    assert labels == {"min"}
    np.testing.assert_allclose(np.abs(res.x), 1 / math.sqrt(2), atol=1e-9)


def test_perturbed_gd_escapes_saddle_and_respects_radius():
    res = L.perturbed_gd(L.l2l4_grad, L.l2l4_hessian, np.zeros(3), 0.05, 400, 1e-6, seed=4,
                         max_perturbations=1)
    assert res.perturbed_at == [0]
    assert np.linalg.norm(res.perturbations[0]) <= 1e-6
    assert L.classify(L.l2l4_hessian(res.x))[0] == "min"
    again = L.perturbed_gd(L.l2l4_grad, L.l2l4_hessian, np.zeros(3), 0.05, 400, 1e-6, seed=4,
                           max_perturbations=1)
    np.testing.assert_array_equal(res.path, again.path)
    # plain GD stays at the saddle
    assert np.all(L.gd(L.l2l4_grad, np.zeros(3), 0.05, 400).x == 0)
    # escape time close to the linearized prediction
    t = L.escape_steps(res.path, np.zeros(3), 0.5, start=0)
    pred = L.predicted_escape_steps(2.0, 0.05, np.linalg.norm(res.perturbations[0]), 0.5)
    assert abs(t / pred - 1) < 0.05


def test_perturbed_gd_at_a_minimum_with_hessian_does_not_perturb():
    x0 = np.full(2, 1 / math.sqrt(2))
    res = L.perturbed_gd(L.l2l4_grad, L.l2l4_hessian, x0, 0.05, 100, 1e-3, seed=0)
    assert res.perturbed_at == []
    first_order = L.perturbed_gd(L.l2l4_grad, None, x0, 0.05, 100, 1e-3, seed=0, t_thres=30)
    assert len(first_order.perturbed_at) >= 2  # without a Hessian it cannot tell


def test_perturbed_gd_errors():
    with pytest.raises(ValueError, match="radius"):
        L.perturbed_gd(L.l2l4_grad, None, np.zeros(2), 0.1, 10, 0.0)
    with pytest.raises(ValueError, match="shape"):
        L.perturbed_gd(L.l2l4_grad, None, np.zeros((2, 2)), 0.1, 10, 1e-3)
    with pytest.raises(ValueError, match="hess_or_none"):
        L.perturbed_gd(L.l2l4_grad, 5, np.zeros(2), 0.1, 10, 1e-3)


def test_escape_steps_and_prediction():
    path = np.array([[0.0], [0.1], [0.3], [0.6], [0.2]])
    assert L.escape_steps(path, np.zeros(1), 0.5) == 3
    assert L.escape_steps(path, np.zeros(1), 0.5, start=1) == 2
    assert L.escape_steps(path, np.zeros(1), 0.7) is None
    assert L.predicted_escape_steps(2, 0.05, 1e-6, 0.5) == pytest.approx(math.log(5e5) / math.log(1.1))
    with pytest.raises(ValueError):
        L.predicted_escape_steps(-2, 0.05, 1e-6, 0.5)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_scalar_linear_net_hessian_fd(depth):
    rng = np.random.default_rng(depth)
    w = rng.normal(size=depth)
    f = lambda w: 0.5 * (np.prod(w) - 1.3) ** 2  # noqa: E731
    grad = lambda w: approx_fprime(w, f, 1e-7)  # noqa: E731
    H = L.scalar_linear_net_hessian(w, target=1.3)
    np.testing.assert_allclose(H, fd_hessian(grad, w, 1e-4), atol=2e-4)
    w[0] = 0.0  # zeros must not break the products
    assert np.all(np.isfinite(L.scalar_linear_net_hessian(w)))


def test_linear_net_saddle_orders():
    assert L.classify(L.scalar_linear_net_hessian(np.zeros(2))) == ("saddle", 1)
    assert L.classify(L.scalar_linear_net_hessian(np.zeros(3))) == ("degenerate", 0)


# --------------------------------------------------------------------------- matrices

def best_psd_rank(M, r):
    w, V = scipy.linalg.eigh(M)
    idx = np.argsort(w)[::-1][:r]
    w = np.maximum(w[idx], 0)
    return (V[:, idx] * w) @ V[:, idx].T


def test_random_psd():
    M = L.random_psd(10, 3, seed=1, spectrum=[3, 2, 1])
    np.testing.assert_allclose(np.sort(scipy.linalg.eigvalsh(M))[::-1][:4], [3, 2, 1, 0], atol=1e-12)
    with pytest.raises(ValueError):
        L.random_psd(3, 4)


def test_matrix_factorization_reaches_best_psd_approximation():
    rng = np.random.default_rng(5)
    M = L.random_psd(12, 2, seed=2, spectrum=[1.0, 0.6])
    res = L.matrix_factorization_gd(M, 2, 0.2, 2000, seed=0)
    assert res.rel_error < 1e-8 and not res.diverged
    # an indefinite symmetric target: X X^T must approach its best PSD rank-r approximation
    A = rng.normal(size=(8, 8))
    S = (A + A.T) / 4
    res = L.matrix_factorization_gd(S, 2, 0.05, 20000, seed=1)
    np.testing.assert_allclose(res.X @ res.X.T, best_psd_rank(S, 2), atol=1e-6)
    assert np.all(np.diff(res.losses) <= 1e-12)


def test_matrix_factorization_errors_and_divergence():
    M = L.random_psd(5, 2)
    with pytest.raises(ValueError, match="symmetric"):
        L.matrix_factorization_gd(np.triu(np.ones((3, 3))), 1, 0.1, 10)
    with pytest.raises(ValueError, match="rank"):
        L.matrix_factorization_gd(M, 6, 0.1, 10)
    with pytest.raises(ValueError, match="lr"):
        L.matrix_factorization_gd(M, 2, -0.1, 10)
    res = L.matrix_factorization_gd(M, 2, 50.0, 200, seed=0, init_scale=3.0)
    assert res.diverged and np.all(np.isfinite(res.losses))


def completion_loss(U, M, mask, p):
    return np.sum((mask * (U @ U.T - M)) ** 2) / (2 * p)


def test_completion_full_mask_recovers_and_batch_matches_single():
    M, _ = L.completion_instance(20, 2, 0.5, seed=3)
    full = np.ones_like(M, dtype=bool)
    res = L.matrix_completion_gd(M, full, 2, 0.05, 3000, seed=0, M_true=M)
    assert res.rel_error < 1e-8
    M2, mask2 = L.completion_instance(20, 2, 0.6, seed=4)
    single = L.matrix_completion_gd(M2 * mask2, mask2, 2, 0.05, 50, seed=9, p=0.6)
    batch = L.matrix_completion_gd(np.stack([M2 * mask2, M * mask2]), np.stack([mask2, mask2]), 2, 0.05, 50,
                                   seed=9, p=0.6)
    np.testing.assert_allclose(batch.X[0], single.X, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(batch.losses[:, 0], single.losses, rtol=1e-12)
    assert single.losses[-1] == pytest.approx(completion_loss(single.X, M2, mask2, 0.6), rel=1e-10)


def test_completion_gradient_and_hessian_by_finite_differences():
    M, mask = L.completion_instance(8, 2, 0.5, seed=6)
    p = 0.5
    U = np.random.default_rng(0).normal(size=(8, 2)) * 0.5
    f = lambda u: completion_loss(u.reshape(8, 2), M, mask, p)  # noqa: E731
    # one GD step with lr = eps moves U by -eps * grad
    eps = 1e-3
    H = L.completion_hessian(U, M * mask, mask, p=p)
    grad_fd = approx_fprime(U.ravel(), f, 1e-7)
    np.testing.assert_allclose(H, fd_hessian(lambda u: approx_fprime(u, f, 1e-6), U.ravel(), 1e-4), atol=2e-3)
    # the GD step uses the same gradient
    res = L.matrix_completion_gd(M * mask, mask, 2, eps, 1, seed=0, p=p, init_scale=1.0)
    U0 = np.random.default_rng(0).standard_normal((1, 8, 2))[0]
    g0 = approx_fprime(U0.ravel(), f, 1e-7).reshape(8, 2)
    np.testing.assert_allclose(res.X, U0 - eps * g0, atol=1e-8)
    assert grad_fd.shape == (16,)


def test_completion_regularizer_gradient():
    M, mask = L.completion_instance(6, 2, 0.7, seed=8)
    p, reg, alpha = 0.7, 2.0, 0.3

    def f(u):
        U = u.reshape(6, 2)
        ex = np.maximum(np.linalg.norm(U, axis=1) - alpha, 0)
        return completion_loss(U, M, mask, p) + reg * np.sum(ex**4)

    res = L.matrix_completion_gd(M * mask, mask, 2, 1e-3, 1, seed=2, p=p, reg=reg, alpha=alpha, init_scale=1.0)
    U0 = np.random.default_rng(2).standard_normal((1, 6, 2))[0]
    np.testing.assert_allclose(res.X, U0 - 1e-3 * approx_fprime(U0.ravel(), f, 1e-7).reshape(6, 2), atol=1e-8)


def test_completion_errors():
    M, mask = L.completion_instance(6, 2, 0.5, seed=1)
    with pytest.raises(ValueError, match="symmetric"):
        L.matrix_completion_gd(M, np.triu(mask), 2, 0.1, 10)
    with pytest.raises(ValueError, match="match"):
        L.matrix_completion_gd(M, mask[:5, :5], 2, 0.1, 10)
    with pytest.raises(ValueError, match="no entry"):
        L.matrix_completion_gd(M, np.zeros_like(mask), 2, 0.1, 10)
    with pytest.raises(ValueError, match="reg"):
        L.matrix_completion_gd(M, mask, 2, 0.1, 10, reg=-1)
    with pytest.raises(ValueError, match="probability"):
        L.completion_instance(6, 2, 1.5)


def test_completion_divergence_is_a_field():
    M, mask = L.completion_instance(10, 2, 0.5, seed=1)
    res = L.matrix_completion_gd(M * mask, mask, 2, 100.0, 100, seed=0, init_scale=2.0)
    assert res.diverged
    assert np.all(np.isfinite(res.losses))


# --------------------------------------------------------------------------- teacher-student

def test_relu_kernel_monte_carlo():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((400_000, 3))
    for _ in range(3):
        w, v = rng.normal(size=3), rng.normal(size=3)
        mc = np.maximum(X @ w, 0) * np.maximum(X @ v, 0)
        assert abs(L.relu_kernel(w, v) - mc.mean()) < 4 * mc.std() / math.sqrt(len(X))
    w = rng.normal(size=3)
    assert L.relu_kernel(w, w) == pytest.approx(w @ w / 2)
    assert L.relu_kernel(w, -w) == pytest.approx(0, abs=1e-12)
    assert L.relu_kernel(np.zeros(3), w) == 0


def test_teacher_student_loss_and_grad():
    rng = np.random.default_rng(8)
    V = np.eye(3, 4)
    W = rng.normal(size=(5, 4))
    X = rng.standard_normal((400_000, 4))
    r = np.maximum(X @ W.T, 0).sum(1) - np.maximum(X @ V.T, 0).sum(1)
    mc = 0.5 * r**2
    assert abs(L.teacher_student_loss(W, V) - mc.mean()) < 4 * mc.std() / math.sqrt(len(X))
    assert L.teacher_student_loss(np.eye(3, 4), V) == pytest.approx(0, abs=1e-14)
    g = approx_fprime(W.ravel(), lambda w: L.teacher_student_loss(w.reshape(5, 4), V), 1e-7)
    np.testing.assert_allclose(L.teacher_student_grad(W, V).ravel(), g, atol=1e-5)
    # batched shapes
    assert L.teacher_student_loss(np.stack([W, W]), V).shape == (2,)
    assert L.teacher_student_grad(np.stack([W, W]), V).shape == (2, 5, 4)


def test_teacher_student_relu_one_step_matches_numpy_gradient():
    k, n, lr = 3, 4, 0.3
    res = L.teacher_student_relu(k, n, 5, None, 1, [3, 11], lr=lr)
    a = math.sqrt(6 / (5 + n))
    for i, s in enumerate([3, 11]):
        W0 = np.random.default_rng(s).uniform(-a, a, (n, 5))
        expected = W0 - lr * L.teacher_student_grad(W0, np.eye(k, 5))
        np.testing.assert_allclose(res.W[i], expected, atol=1e-12)
        assert res.losses[i] == pytest.approx(L.teacher_student_loss(expected, np.eye(k, 5)), rel=1e-12)


def test_teacher_student_relu_converges_small_case():
    res = L.teacher_student_relu(2, 2, None, None, 1500, 6)
    assert res.success.all()
    assert res.losses.max() < 1e-10


def test_teacher_student_empirical_loss_and_grad():
    res0 = L.teacher_student_relu(2, 3, 3, 500, 0, [5])
    a = math.sqrt(6 / 6)
    W0 = np.random.default_rng(5).uniform(-a, a, (3, 3))
    X = np.random.default_rng(10_005).standard_normal((500, 3))
    f = lambda w: 0.5 * np.mean((np.maximum(X @ w.reshape(3, 3).T, 0).sum(1) - np.maximum(X[:, :2], 0).sum(1)) ** 2)  # noqa: E731
    assert res0.losses[0] == pytest.approx(f(W0), rel=1e-12)
    res1 = L.teacher_student_relu(2, 3, 3, 500, 1, [5], lr=0.1)
    np.testing.assert_allclose(res1.W[0].ravel(), W0.ravel() - 0.1 * approx_fprime(W0.ravel(), f, 1e-8), atol=1e-6)


def test_teacher_student_hessian_fd():
    W = np.random.default_rng(9).normal(size=(3, 3))
    V = np.eye(2, 3)
    H = L.teacher_student_hessian(W, 2)
    Hfd = fd_hessian(lambda w: L.teacher_student_grad(w.reshape(3, 3), V), W.ravel(), 1e-6)
    np.testing.assert_allclose(H, Hfd, atol=1e-6)


def test_teacher_student_errors():
    with pytest.raises(ValueError, match="d must be"):
        L.teacher_student_relu(4, 4, 3, None, 10, 2)
    with pytest.raises(ValueError, match="seeds"):
        L.teacher_student_relu(2, 2, None, None, 10, [])
    with pytest.raises(ValueError, match="lr"):
        L.teacher_student_relu(2, 2, None, None, 10, 2, lr=0)
    with pytest.raises(ValueError, match="samples"):
        L.teacher_student_relu(2, 2, None, 0, 10, 2)


def test_teacher_student_divergence_is_reported():
    res = L.teacher_student_relu(3, 3, None, None, 200, 3, lr=50.0)
    assert res.diverged.any()
    assert not res.spurious[res.diverged].any()


def test_batched_speedup_loop_gives_the_same_final_losses():
    b = L.batched_speedup(6, k=4, steps=60, device="cpu")
    assert (b.restarts, b.k, b.n, b.steps, b.device) == (6, 4, 4, 60, "cpu")
    assert b.max_abs_diff <= 1e-10 and b.max_abs_diff_W <= 1e-10
    assert b.loop_s > 0 and b.batched_s > 0 and b.speedup == pytest.approx(b.loop_s / b.batched_s)
    # and against an explicit loop of single-restart calls, seed by seed
    batch = L.teacher_student_relu(4, 5, None, None, 40, [7, 8, 9], lr=0.5, device="cpu")
    loop = np.array([L.teacher_student_relu(4, 5, None, None, 40, [s], lr=0.5, device="cpu").losses[0]
                     for s in (7, 8, 9)])
    np.testing.assert_allclose(batch.losses, loop, rtol=0, atol=1e-10)


def test_batched_speedup_errors():
    for kwargs, match in [(dict(restarts=0), "restarts"), (dict(restarts=2, k=0), "k"),
                          (dict(restarts=2, steps=0), "steps"), (dict(restarts=2, device="tpu"), "device"),
                          (dict(restarts=2, threads=0), "threads")]:
        with pytest.raises(ValueError, match=match):
            L.batched_speedup(**kwargs)


def test_stable_lr_below_two_over_the_top_hessian_eigenvalue():
    assert L.stable_lr(6) == L.stable_lr(12) == 0.5
    assert L.stable_lr(20) == pytest.approx(0.3) and L.stable_lr(10, 11) == 0.5 and L.stable_lr(20, 21) < 0.3
    for k in (6, 14, 20):  # near the global minimum W = I (exactly there arccos is singular)
        W = np.eye(k) + 1e-5 * np.random.default_rng(k).standard_normal((k, k))
        lam = np.linalg.eigvalsh(L.teacher_student_hessian(W, k))[-1]
        assert L.stable_lr(k) < 2 / lam
    with pytest.raises(ValueError, match="teacher_k"):
        L.stable_lr(0)


def test_spurious_minima_table_rows_equal_direct_runs(monkeypatch):
    monkeypatch.delenv("DLT_SCALE", raising=False)
    monkeypatch.delenv("DLT_CLUSTER", raising=False)
    t = L.spurious_minima_table([(3, 3), 4, (3, 4)], restarts=5, steps=80, device="cpu")
    assert [(r.teacher_k, r.student_k) for r in t.rows] == [(3, 3), (4, 4), (3, 4)]
    assert t.backend == "sequential" and t.n_jobs == 1 and not any(t.cached)
    assert t.lrs == [0.5, 0.5, 0.5] and len(t.seconds) == 3 and t.compute_s > 0 and t.wall_s > 0
    for r in t.rows:
        direct = L.teacher_student_relu(r.teacher_k, r.student_k, None, None, 80, 5, lr=0.5, device="cpu")
        np.testing.assert_array_equal(r.losses, direct.losses)
    assert t.row(4).student_k == 4 and t.row(3, 4).student_k == 4
    assert set(t.stuck) == {(3, 3), (4, 4), (3, 4)} and "3 rows x 5 restarts x 80 steps" in t.timing()
    with pytest.raises(ValueError, match="no row"):
        t.row(9)
    # the same rows from two worker processes, in the order given
    par = L.spurious_minima_table([(3, 3), 4, (3, 4)], restarts=5, steps=80, n_jobs=2, device="cpu")
    assert par.backend == "loky" and par.n_jobs == 2
    for a, b in zip(par.rows, t.rows):
        np.testing.assert_array_equal(a.losses, b.losses)


def test_spurious_minima_table_caches_at_paper_scale(monkeypatch, tmp_path):
    monkeypatch.setenv("DLT_SCALE", "paper")
    monkeypatch.setenv("DLT_CACHE", str(tmp_path))
    first = L.spurious_minima_table([3], restarts=3, steps=20, n_jobs=1, device="cpu")
    again = L.spurious_minima_table([3], restarts=3, steps=20, n_jobs=1, device="cpu")
    assert first.cached == [False] and again.cached == [True]
    assert again.seconds == first.seconds  # the computing time is stored with the cached row
    np.testing.assert_array_equal(again.rows[0].losses, first.rows[0].losses)
    assert "read from the cache" in again.timing()


def test_spurious_minima_table_errors():
    for args, kwargs, match in [(([], 2, 10), {}, "empty"), ((5, 2, 10), {}, "sequence"),
                                (([(3, 3, 3)], 2, 10), {}, "two entries"), (([0], 2, 10), {}, "k must"),
                                (([3], 0, 10), {}, "restarts"), (([3], 2, 10), {"lr": -1}, "lr"),
                                (([3], 2, 10), {"n_jobs": 0}, "n_jobs"), (([3], 2, 10), {"device": "gpu"}, "device")]:
        with pytest.raises(ValueError, match=match):
            L.spurious_minima_table(*args, **kwargs)


# --------------------------------------------------------------------------- tensors

def test_tensor_ascent_orthonormal_components_found_exactly():
    Q = scipy.linalg.qr(np.random.default_rng(10).normal(size=(8, 8)))[0]
    A = Q[:5] * np.array([1.0, 2.0, 0.5, 1.5, 1.0])[:, None]
    res = L.tensor_power_ascent(A, 200, seed=0, restarts=30)
    np.testing.assert_allclose(res.overlap, 1.0, atol=1e-8)
    for x, i, s in zip(res.x, res.index, res.sign):
        np.testing.assert_allclose(x, s * A[i] / np.linalg.norm(A[i]), atol=1e-8)


def test_tensor_ascent_is_monotone():
    A = np.random.default_rng(11).normal(size=(40, 10))
    vals = [L.tensor_power_ascent(A, t, seed=3, lr=0.3, restarts=5).value for t in range(0, 30, 3)]
    assert np.all(np.diff(np.array(vals), axis=0) >= -1e-9)


def test_tensor_errors():
    with pytest.raises(ValueError, match="zero row"):
        L.tensor_power_ascent(np.zeros((3, 4)), 10)
    with pytest.raises(ValueError, match="dimension"):
        L.tensor_power_ascent(np.ones(4), 10)
    with pytest.raises(ValueError, match="matrix"):
        L.tensor_power_ascent(np.ones((2, 3, 4)), 10)
    with pytest.raises(ValueError, match="lr"):
        L.tensor_power_ascent(np.eye(3), 10, lr=0)


# --------------------------------------------------------------------------- widget

def test_widget_every_grid_point_renders_fast():
    spec = widgets.REGISTRY["ch02-saddles"]()
    assert spec.n_frames <= 40
    times = widgets.latency(spec)
    assert len(times) == spec.n_frames
    assert np.median(times) < 0.5  # generous: the test machine is shared


def test_widget_start_on_axis_shows_saddle_vs_escape():
    res = L.saddle_widget_compute(0.5, 0.0)
    assert res.gd_end == "saddle" and res.pgd_end == "min"
    t = time.perf_counter()
    L.saddle_widget_plot(res)
    assert time.perf_counter() - t < 2


def test_completion_sweep_and_failure_inspection():
    sw = L.completion_sweep(20, 2, [0.08, 0.25, 0.9], seeds=[0, 1, 2], lr=0.05, steps=300)
    assert sw.rel_error.shape == (3, 3) and sw.X.shape == (3, 3, 20, 2)
    assert sw.successes[2] == 3  # nearly full observation: recovered
    assert sw.successes[1] < 3  # some failures above the degrees of freedom: the Hessian path is tested
    fails = L.inspect_completion_failures(sw)
    assert len(fails) == int(np.sum(sw.rel_error >= sw.success_tol))
    dof = 20 * 2 - 1
    for f in fails:
        a = list(np.round(sw.ps, 12)).index(round(f.p, 12))
        b = sw.seeds.index(f.seed)
        M, mask = sw.instance(a, b)
        assert f.n_observed == np.count_nonzero(np.triu(mask))
        assert f.rel_error == sw.rel_error[a, b] >= sw.success_tol
        U = sw.X[a, b]
        grad = approx_fprime(U.ravel(), lambda u, M=M, mask=mask, p=f.p: completion_loss(u.reshape(20, 2), M, mask, p), 1e-7)
        assert f.grad_norm == pytest.approx(np.linalg.norm(grad), rel=1e-3, abs=1e-6)
        if f.n_observed > dof:
            H = L.completion_hessian(U, M * mask, mask, p=f.p)
            assert f.min_hess_eig == pytest.approx(scipy.linalg.eigvalsh(H)[0], abs=1e-10)
        else:
            assert math.isnan(f.min_hess_eig) and not f.looks_spurious(dof)


def test_looks_spurious_needs_positive_loss():
    f = L.CompletionFailure(0.2, 0, 500, obs_loss=1e-13, grad_norm=1e-8, min_hess_eig=1e-9, rel_error=0.1)
    assert not f.looks_spurious(297)  # f ~ 0: a global minimizer of the sampled objective
    g = L.CompletionFailure(0.2, 0, 500, obs_loss=0.05, grad_norm=1e-8, min_hess_eig=1e-3, rel_error=1.0)
    assert g.looks_spurious(297) and not g.looks_spurious(600)
    h = L.CompletionFailure(0.2, 0, 500, obs_loss=0.05, grad_norm=1e-8, min_hess_eig=-1e-2, rel_error=1.0)
    assert not h.looks_spurious(297)


def test_tensor_riemannian_hessian_matches_finite_differences_on_the_sphere():
    rng = np.random.default_rng(12)
    A = rng.normal(size=(7, 4))
    x = rng.normal(size=4)
    x /= np.linalg.norm(x)
    T = lambda y: np.sum((A @ y) ** 4)  # noqa: E731
    B = scipy.linalg.null_space(x[None, :])
    # second derivative of T along the great circle cos(t) x + sin(t) v, for v in the tangent space
    def curv(v, h=1e-4):
        return (T(np.cos(h) * x + np.sin(h) * v) - 2 * T(x) + T(np.cos(-h) * x + np.sin(-h) * v)) / h**2
    Hfd = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            vp = (B[:, i] + B[:, j]) / np.sqrt(2) if i != j else B[:, i]
            Hfd[i, j] = curv(vp)
    for i in range(3):
        for j in range(3):
            if i != j:
                Hfd[i, j] = Hfd[i, j] - (Hfd[i, i] + Hfd[j, j]) / 2
    assert L.tensor_riemannian_hessian_max(A, x) == pytest.approx(np.linalg.eigvalsh(Hfd)[-1], rel=1e-4)
    # at a component of an orthonormal tensor: a strict local maximum
    Q = scipy.linalg.qr(rng.normal(size=(5, 5)))[0]
    assert L.tensor_riemannian_hessian_max(Q[:3], Q[0]) < 0


def test_tensor_sweep_exceptions():
    sw = L.tensor_overlap_sweep(12, [6, 60], restarts=12, steps=200, seed=1, threshold=0.99)
    np.testing.assert_allclose(np.linalg.norm(sw.components(1), axis=1), 1.0)
    ex = L.tensor_exceptions(sw, 1)
    assert len(ex) == int(np.sum(sw.overlaps[1] < 0.99))
    for e in ex:
        assert e.top_overlaps[0] < 0.99 and np.all(np.diff(e.top_overlaps) <= 0)


