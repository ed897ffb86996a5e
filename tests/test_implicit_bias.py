"""Chapter 1's functions in helpers.implicit_bias, checked against independent references:
numpy's pseudo-inverse (closed form), cvxpy (the KL projection and the min-l1 problem),
scipy's linprog, and the optimality conditions. Chapter 7's functions are tested in
test_implicit_bias_margins.py."""

import numpy as np
import pytest

from helpers import implicit_bias as ib
from helpers import widgets


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def _problem(n, d, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal(n), rng.standard_normal(d)


# ----------------------------------------------------------------------------- GD / SGD on least squares


@pytest.mark.parametrize("n,d,seed", [(5, 12, 0), (20, 50, 1), (25, 40, 2), (3, 100, 3)])
def test_gd_from_zero_is_pinv(n, d, seed):
    X, y, _ = _problem(n, d, seed)
    res = ib.gd_least_squares(X, y)
    assert res.converged and not res.diverged
    assert rel(res.w, np.linalg.pinv(X) @ y) < 1e-8
    assert res.loss[0] == pytest.approx(y @ y / (2 * n))
    assert res.final_loss < 1e-20


@pytest.mark.parametrize("n,d,seed", [(5, 12, 4), (20, 50, 5)])
def test_gd_from_any_start_is_closest_solution(n, d, seed):
    X, y, w0 = _problem(n, d, seed)
    ref = w0 + np.linalg.pinv(X) @ (y - X @ w0)
    res = ib.gd_least_squares(X, y, w0=w0, lr=0.5 / ib.smoothness(X))
    assert rel(res.w, ref) < 1e-8
    # the limit is the closest solution: its offset from w0 is orthogonal to the null space
    null = np.linalg.svd(X)[2][n:]
    assert np.abs(null @ (res.w - w0)).max() < 1e-10
    assert np.allclose(ib.min_l2_solution(X, y, w0), ref)


def test_gd_rank_deficient_and_inconsistent():
    """Rank-deficient X and y outside its range: GD still ends at w0 + pinv(X)(y - X w0)."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((8, 3)) @ rng.standard_normal((3, 10))  # rank 3, 8 equations
    y = rng.standard_normal(8)
    w0 = rng.standard_normal(10)
    res = ib.gd_least_squares(X, y, w0=w0, steps=200_000)
    ref = w0 + np.linalg.pinv(X) @ (y - X @ w0)
    assert rel(res.w, ref) < 1e-8
    lsq = np.linalg.lstsq(X, y, rcond=None)[0]
    assert res.final_loss == pytest.approx(np.sum((X @ lsq - y) ** 2) / 16, rel=1e-9)


def test_gd_path_and_divergence():
    X, y, _ = _problem(6, 10, 7)
    L = ib.smoothness(X)
    assert L == pytest.approx(np.linalg.eigvalsh(X.T @ X).max() / 6)
    res = ib.gd_least_squares(X, y, lr=0.5 / L, steps=50, tol=0, record_path=True)
    assert res.path.shape == (51, 10) and len(res.loss) == 51 and res.steps == 50
    assert np.all(np.diff(res.loss) <= 1e-15)  # a stable step never increases the loss
    bad = ib.gd_least_squares(X, y, lr=2.5 / L, steps=10_000)
    assert bad.diverged and not np.isfinite(bad.final_loss) or bad.final_loss > 1e6
    assert np.all(np.isfinite(bad.w))


@pytest.mark.parametrize("order", ["shuffle", "cyclic"])
def test_sgd_reaches_closest_solution(order):
    X, y, w0 = _problem(10, 25, 8)
    res = ib.sgd_least_squares(X, y, w0=w0, seed=3, order=order)
    assert rel(res.w, w0 + np.linalg.pinv(X) @ (y - X @ w0)) < 1e-8
    again = ib.sgd_least_squares(X, y, w0=w0, seed=3, order=order)
    assert np.array_equal(res.w, again.w)  # seeded


def test_least_squares_input_validation():
    X, y, w0 = _problem(4, 6, 9)
    with pytest.raises(ValueError, match="2-D"):
        ib.gd_least_squares(X[0], y)
    with pytest.raises(ValueError, match="one entry per row"):
        ib.gd_least_squares(X, y[:3])
    with pytest.raises(ValueError, match="w0 must have shape"):
        ib.gd_least_squares(X, y, w0=w0[:4])
    with pytest.raises(ValueError, match="step size"):
        ib.gd_least_squares(X, y, lr=-1.0)
    with pytest.raises(ValueError, match="steps"):
        ib.gd_least_squares(X, y, steps=0)
    with pytest.raises(ValueError, match="finite"):
        ib.gd_least_squares(np.full((2, 3), np.nan), np.zeros(2))
    with pytest.raises(ValueError, match="all zeros"):
        ib.gd_least_squares(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="order"):
        ib.sgd_least_squares(X, y, order="random")
    with pytest.raises(ValueError, match="epochs"):
        ib.sgd_least_squares(X, y, epochs=-2)


# ----------------------------------------------------------------------------- EG and the KL projection


def _positive_problem(n, d, seed, k=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    truth = np.zeros(d)
    truth[rng.choice(d, k, replace=False)] = rng.uniform(0.5, 1.5, k)
    return X, X @ truth, truth


@pytest.mark.parametrize("n,d,seed,alpha", [(5, 15, 0, 1.0), (10, 30, 1, 0.5), (8, 20, 2, 2.0)])
def test_min_kl_matches_cvxpy(n, d, seed, alpha):
    cp = pytest.importorskip("cvxpy")
    X, y, _ = _positive_problem(n, d, seed)
    w0 = np.full(d, alpha) * np.random.default_rng(seed).uniform(0.5, 1.5, d)
    w = cp.Variable(d)
    prob = cp.Problem(cp.Minimize(cp.sum(cp.kl_div(w, w0))), [X @ w == y])
    prob.solve()
    ours = ib.min_kl_solution(X, y, w0)
    assert rel(ours, w.value) < 1e-4  # cvxpy's exponential-cone solver is the looser one
    # our solution satisfies the optimality conditions to high accuracy
    assert np.linalg.norm(X @ ours - y) < 1e-9 * (1 + np.linalg.norm(y))
    nu = np.linalg.lstsq(X.T, np.log(ours / w0), rcond=None)[0]
    assert np.linalg.norm(X.T @ nu - np.log(ours / w0)) < 1e-8


def test_min_kl_plain_relative_entropy():
    cp = pytest.importorskip("cvxpy")
    X, y, _ = _positive_problem(6, 14, 3)
    w0 = np.full(14, 0.7)
    w = cp.Variable(14)
    cp.Problem(cp.Minimize(cp.sum(cp.rel_entr(w, w0))), [X @ w == y]).solve()
    assert rel(ib.min_kl_solution(X, y, w0, generalized=False), w.value) < 1e-4


@pytest.mark.parametrize("seed,alpha", [(4, 1.0), (5, 0.3)])
def test_eg_converges_to_kl_projection(seed, alpha):
    X, y, _ = _positive_problem(10, 30, seed)
    w0 = np.full(30, alpha)
    res = ib.exponentiated_gradient(X, y, w0, lr=0.05, steps=100_000, tol=1e-15)
    assert not res.diverged and np.all(res.w > 0)
    assert rel(res.w, ib.min_kl_solution(X, y, w0)) < 1e-6


def test_eg_small_alpha_approaches_min_l1_and_recovers_sparse_truth():
    X, y, truth = _positive_problem(20, 60, 1)
    l1 = ib.min_l1_solution(X, y, nonnegative=True)
    dists = [rel(ib.min_kl_solution(X, y, np.full(60, a)), l1) for a in (1.0, 1e-2, 1e-4, 1e-8)]
    assert np.all(np.diff(dists) < 0) and dists[-1] < 0.05
    assert rel(l1, truth) < 1e-6
    assert rel(ib.min_l2_solution(X, y), truth) > 0.5


def test_min_l1_matches_cvxpy_and_linprog_formulations():
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(11)
    X, y = rng.standard_normal((6, 15)), rng.standard_normal(6)
    w = cp.Variable(15)
    val = cp.Problem(cp.Minimize(cp.norm1(w)), [X @ w == y]).solve()
    ours = ib.min_l1_solution(X, y)
    assert np.abs(ours).sum() == pytest.approx(val, rel=1e-6)
    assert np.allclose(X @ ours, y, atol=1e-8)
    wn = cp.Variable(15)
    valn = cp.Problem(cp.Minimize(cp.sum(wn)), [X @ wn == y, wn >= 0]).solve()
    oursn = ib.min_l1_solution(X, y, nonnegative=True)
    assert oursn.sum() == pytest.approx(valn, rel=1e-6) and oursn.min() >= -1e-12


def test_eg_and_kl_validation():
    X, y, _ = _positive_problem(4, 8, 2)
    with pytest.raises(ValueError, match="strictly positive"):
        ib.exponentiated_gradient(X, y, np.zeros(8), lr=0.1, steps=10)
    with pytest.raises(ValueError, match="step size"):
        ib.exponentiated_gradient(X, y, np.ones(8), lr=0.0, steps=10)
    with pytest.raises(ValueError, match="steps"):
        ib.exponentiated_gradient(X, y, np.ones(8), lr=0.1, steps=1.5)
    with pytest.raises(ValueError, match="positive solution"):
        ib.min_kl_solution(np.ones((1, 3)), np.array([-1.0]), np.ones(3))
    with pytest.raises(ValueError, match="non-negative solution"):
        ib.min_l1_solution(np.ones((1, 3)), np.array([-1.0]), nonnegative=True)
    # a huge step overflows: reported, not raised
    bad = ib.exponentiated_gradient(X, y * 100, np.ones(8), lr=50.0, steps=200)
    assert bad.diverged


# ----------------------------------------------------------------------------- Adam / sign GD


def test_adam_interpolates_elsewhere():
    X, y, _ = _problem(20, 50, 0)
    adam = ib.adam_least_squares(X, y, lr=0.01, steps=5000)
    assert adam.final_loss < 1e-12 * adam.loss[0]
    pinv = np.linalg.pinv(X) @ y
    assert rel(adam.w, pinv) > 0.1 and np.linalg.norm(adam.w) > 1.05 * np.linalg.norm(pinv)
    sign = ib.sign_gd_least_squares(X, y, lr=0.01, steps=3000)
    assert sign.final_loss < 1e-2 * sign.loss[0]
    with pytest.raises(ValueError, match="betas"):
        ib.adam_least_squares(X, y, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="eps"):
        ib.adam_least_squares(X, y, eps=0)


# ----------------------------------------------------------------------------- the widget


def test_plane_picture_lands_where_predicted():
    gd = ib.plane_picture(2.0, -1.0, "GD", steps=200)
    X, y = np.array([[1.0, 2.0]]), np.array([2.0])
    assert np.allclose(gd.path[-1], gd.w0 + np.linalg.pinv(X) @ (y - X @ gd.w0), atol=1e-8)
    eg = ib.plane_picture(2.0, 2.0, "EG", steps=400)
    assert np.allclose(eg.path[-1], eg.closest_kl, atol=1e-6)
    assert not np.allclose(eg.closest_kl, eg.closest_l2, atol=1e-2)
    assert ib.plane_picture(-1.0, 1.0, "EG").message
    with pytest.raises(ValueError, match="algorithm"):
        ib.plane_picture(0.0, 0.0, "Adam")


def test_plane_widget_registered_and_small():
    spec = widgets.REGISTRY["ch01-least-squares"]()
    assert spec.n_frames <= 40
