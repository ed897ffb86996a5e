"""Chapter 7's functions in helpers.implicit_bias: the max-margin direction and GD on the logistic loss.

References are independent of the code under test: scikit-learn's SVC, cvxpy's QP solver,
scipy's minimisers and closed forms.
"""

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar
from sklearn.svm import SVC

from helpers import implicit_bias as ib
from helpers import linear_nets as ln


def _svc_direction(X, y):
    """sklearn's SVC always fits an intercept b. Homogeneous trick: add the mirrored points
    (-x_i, -y_i). For the symmetric data set any feasible (w, b) gives a feasible (w, -b), and
    the constraints of a support vector and of its mirror force |b| <= y_i <w, x_i> - 1 = 0, so
    the SVM with intercept on the mirrored data is the SVM without intercept on the original."""
    Xs = np.vstack([X, -X])
    ys = np.concatenate([y, -y])
    clf = SVC(kernel="linear", C=1e10, tol=1e-12).fit(Xs, ys)
    assert abs(clf.intercept_[0]) < 1e-6
    w = clf.coef_.ravel()
    return w / np.linalg.norm(w)


def _cvxpy_direction(X, y):
    w = cp.Variable(X.shape[1])
    cp.Problem(cp.Minimize(cp.sum_squares(w)), [cp.multiply(y, X @ w) >= 1]).solve()
    return w.value / np.linalg.norm(w.value)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n,d", [(40, 10), (15, 3), (8, 20), (60, 2)])
def test_max_margin_matches_sklearn_and_cvxpy(seed, n, d):
    X, y = ln.random_separable(n, d, seed=seed)
    u, gamma = ib.max_margin_direction(X, y, return_margin=True)
    assert np.linalg.norm(u) == pytest.approx(1.0, abs=1e-12)
    assert np.linalg.norm(u - _svc_direction(X, y)) < 1e-5
    assert np.linalg.norm(u - _cvxpy_direction(X, y)) < 1e-5
    assert gamma == pytest.approx((y * (X @ u)).min(), abs=1e-12)
    # no unit vector has a larger margin: compare with random directions and with SVC's
    V = np.random.default_rng(seed).standard_normal((2000, d))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    assert (y[:, None] * (X @ V.T)).min(axis=0).max() <= gamma + 1e-12


def test_max_margin_closed_form_soudry():
    X, y = ln.soudry_data()
    u, gamma = ib.max_margin_direction(X, y, return_margin=True)
    np.testing.assert_allclose(u, np.ones(2) / np.sqrt(2), atol=1e-12)
    assert gamma == pytest.approx(np.sqrt(2), abs=1e-12)


def test_max_margin_errors():
    with pytest.raises(ValueError, match="not linearly separable"):
        ib.max_margin_direction([[1.0, 0.0], [1.0, 0.0]], [1, -1])
    with pytest.raises(ValueError, match="not linearly separable"):  # 0 in the hull of z_i
        ib.max_margin_direction([[0, 1], [0, -2], [1, 3], [2, -1.0]], [1, 1, 1, 1])
    with pytest.raises(ValueError, match="-1 or \\+1"):
        ib.max_margin_direction([[1.0, 0.0], [0.0, 1.0]], [0, 1])
    with pytest.raises(ValueError, match="2-D"):
        ib.max_margin_direction([1.0, 2.0], [1, -1])
    with pytest.raises(ValueError, match="one label per row"):
        ib.max_margin_direction(np.eye(3), [1, -1])
    with pytest.raises(ValueError, match="NaN"):
        ib.max_margin_direction([[np.nan, 1.0]], [1])


def test_gd_logistic_first_steps_by_hand():
    X, y = ln.random_separable(20, 4, seed=3)
    lr = 0.1
    path = ib.gd_logistic(X, y, lr, 3, record=[0, 1, 2, 3])
    w = np.zeros(4)
    for t in range(4):
        np.testing.assert_allclose(path.w[t], w, atol=1e-14)
        m = y * (X @ w)
        assert path.loss[t] == pytest.approx(np.sum(np.log1p(np.exp(-m))), rel=1e-12)
        w = w + lr * X.T @ (y / (1 + np.exp(m)))
    avg = ib.gd_logistic(X, y, lr * len(y), 3, record=[0, 1, 2, 3], average=True)
    np.testing.assert_allclose(avg.w, path.w, atol=1e-13)
    np.testing.assert_allclose(avg.loss, path.loss / len(y), rtol=1e-12)


def test_gd_logistic_reaches_the_minimiser_on_nonseparable_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    y = np.where(X @ np.ones(3) + rng.standard_normal(50) > 0, 1.0, -1.0)
    path = ib.gd_logistic(X, y, 1.0 / np.linalg.norm(X, 2) ** 2, 20000, record=5)
    assert path.svm is None and np.all(np.isnan(path.angle))
    ref = minimize(lambda w: np.logaddexp(0, -y * (X @ w)).sum(), np.zeros(3), method="BFGS",
                   options={"gtol": 1e-10}).x
    np.testing.assert_allclose(path.w[-1], ref, atol=1e-5)


def test_gd_logistic_direction_tends_to_svm():
    X, y = ln.random_separable(30, 5, seed=2)
    path = ib.gd_logistic(X, y, 1.0 / np.linalg.norm(X, 2) ** 2, 20000, record=8)
    u = ib.max_margin_direction(X, y)
    np.testing.assert_allclose(path.svm, u)
    assert path.angle[-1] < path.angle[2] and path.angle[-1] < 0.3
    cos = path.w[-1] @ u / np.linalg.norm(path.w[-1])
    assert path.angle[-1] == pytest.approx(np.arccos(cos), abs=1e-12)
    assert path.margin[-1] == pytest.approx((y * (X @ path.w[-1])).min() / np.linalg.norm(path.w[-1]))
    assert path.steps[0] == 0 and path.steps[-1] == 20000 and not path.diverged


def test_gd_logistic_errors():
    X, y = ln.random_separable(10, 2, seed=0)
    with pytest.raises(ValueError, match="lr"):
        ib.gd_logistic(X, y, -1.0, 10)
    with pytest.raises(ValueError, match="lr"):
        ib.gd_logistic(X, y, np.inf, 10)
    with pytest.raises(ValueError, match="steps"):
        ib.gd_logistic(X, y, 0.1, -5)
    with pytest.raises(ValueError, match="w0"):
        ib.gd_logistic(X, y, 0.1, 10, w0=np.zeros(3))
    with pytest.raises(ValueError, match="record"):
        ib.gd_logistic(X, y, 0.1, 10, record=1)
    with pytest.raises(ValueError, match="checkpoints"):
        ib.gd_logistic(X, y, 0.1, 10, record=[3, 50])
    with pytest.raises(ValueError, match="svm"):
        ib.gd_logistic(X, y, 0.1, 10, svm="yes")


def test_log_checkpoints():
    c = ib.log_checkpoints(1000, 10)
    assert c[0] == 0 and c[-1] == 1000 and np.all(np.diff(c) > 0)
    np.testing.assert_array_equal(ib.log_checkpoints(0, 5), [0])


def test_soudry_offset_matches_long_gd_run():
    X, y = ln.soudry_data()
    lr = 1.0 / np.linalg.norm(X, 2) ** 2
    w_hat, w_tilde, support = ib.soudry_offset(X, y, lr)
    np.testing.assert_allclose(w_hat, [0.5, 0.5], atol=1e-12)
    assert support.sum() == 4
    # closed form by symmetry: z.w_tilde = ln(eta / alpha) with alpha = 1/8 per support vector
    np.testing.assert_allclose(w_tilde, np.full(2, np.log(8 * lr) / 2), atol=1e-8)
    # the residual decays like a power of t (t^-1/4 across w_hat here), so the check is loose
    T = 100000
    path = ib.gd_logistic(X, y, lr, T, record=[T])
    assert np.linalg.norm(path.w[-1] - w_hat * np.log(T) - w_tilde) < 1e-2


def test_nonseparable_split_example():
    Z = np.array([[0, 1], [0, -2], [1, 3], [2, -1.0]])
    split = ib.nonseparable_split(Z, np.ones(4))
    np.testing.assert_array_equal(split.tight, [True, True, False, False])
    b = minimize_scalar(lambda v: np.logaddexp(0, -v) + np.logaddexp(0, 2 * v), tol=1e-12).x
    np.testing.assert_allclose(split.offset, [0.0, b], atol=1e-7)
    np.testing.assert_allclose(split.w_hat, [1.0, 0.0], atol=1e-9)
    X, y = ln.random_separable(20, 3, seed=1)
    sep = ib.nonseparable_split(X, y)
    assert not sep.tight.any() and np.allclose(sep.offset, 0)
    u = ib.max_margin_direction(X, y)
    np.testing.assert_allclose(sep.w_hat / np.linalg.norm(sep.w_hat), u, atol=1e-9)
