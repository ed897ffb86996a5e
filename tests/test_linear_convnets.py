"""Chapter 8 helpers (linear_nets convnet part, implicit_bias chapter-8 part) against independent
references: direct convolution sums, finite differences, closed forms, cvxpy/linprog re-solves."""

import numpy as np
import pytest

from helpers import implicit_bias as ib
from helpers import linear_nets as ln
from helpers import widgets


def direct_conv(a, b):
    D = len(a)
    return np.array([sum(a[j] * b[(k - j) % D] for j in range(D)) for k in range(D)])


def test_circular_conv_net_matches_direct_sum():
    rng = np.random.default_rng(0)
    for D, L in [(5, 2), (8, 3), (7, 1)]:
        ws = [rng.standard_normal(D) for _ in range(L)]
        ref = ws[0]
        for w in ws[1:]:
            ref = direct_conv(ref, w)
        assert np.allclose(ln.circular_conv_net(ws), ref * D ** (-(L - 1) / 2))
        F = ln.unitary_dft(D)
        assert np.allclose(F @ ln.circular_conv_net(ws), np.prod([F @ w for w in ws], axis=0))
    with pytest.raises(ValueError, match="same length"):
        ln.circular_conv_net([np.ones(3), np.ones(4)])


def test_conv_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    D, L = 6, 3
    forward, backward = ln._conv_parametrization(D)
    ws = [rng.standard_normal(D) for _ in range(L)]
    g = rng.standard_normal(D)
    assert np.allclose(forward(ws), ln.circular_conv_net(ws))
    grads = backward(ws, g)
    eps = 1e-6
    for k in range(L):
        for j in range(D):
            up = [w.copy() for w in ws]
            dn = [w.copy() for w in ws]
            up[k][j] += eps
            dn[k][j] -= eps
            fd = (g @ forward(up) - g @ forward(dn)) / (2 * eps)
            assert grads[k][j] == pytest.approx(fd, abs=1e-7)


def test_depth1_convnet_is_plain_gd_on_exp_loss():
    X, y = ln.random_separable(6, 4, seed=3)
    path = ln.linear_convnet_gd(X, y, 1, lr=0.1, steps=50, seed=0, normalized=False, init_scale=0.5, record=[50])
    w = 0.5 * np.random.default_rng(0).standard_normal(4) / 2.0
    Z = y[:, None] * X
    for _ in range(50):
        w = w + 0.1 * Z.T @ np.exp(-Z @ w) / len(y)
    assert np.allclose(path.beta[-1], w, atol=1e-12)


def test_fourier_l1_max_margin_closed_form_single_point():
    rng = np.random.default_rng(2)
    for D in (4, 7, 16):
        x = rng.standard_normal(D)
        beta = ib.fourier_l1_max_margin(x[None, :], np.array([1.0]))
        # by Parseval and l1/l_inf duality the optimum is 1 / max_k |(F x)_k|
        assert ib.fourier_l1_norm(beta) == pytest.approx(1.0 / ln.fourier_magnitudes(x).max(), rel=1e-5)
        assert x @ beta >= 1 - 1e-6


def test_fourier_l1_max_margin_beats_feasible_points_and_validates():
    for seed in range(3):
        X, y = ln.random_separable(5, 12, seed=seed)
        beta = ib.fourier_l1_max_margin(X, y)
        assert (y * (X @ beta)).min() >= 1 - 1e-6
        opt = ib.fourier_l1_norm(beta)
        assert opt <= ib.fourier_l1_norm(ln.unit_margin(ib.max_margin_direction(X, y), X, y)) + 1e-6
        rng = np.random.default_rng(seed)
        for _ in range(20):  # random separating directions, rescaled to margin one
            v = beta + 0.3 * rng.standard_normal(12) * np.linalg.norm(beta)
            if (y * (X @ v)).min() > 0:
                assert opt <= ib.fourier_l1_norm(ln.unit_margin(v, X, y)) + 1e-6
    X = np.array([[1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="separable"):
        ib.fourier_l1_max_margin(X, np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="labels"):
        ib.fourier_l1_max_margin(X, np.array([1.0, 2.0]))


def test_convnet_depth2_approaches_fourier_l1_and_fc_approaches_svm():
    X, y = ln.random_separable(5, 16, seed=1)
    opt = ib.fourier_l1_norm(ib.fourier_l1_max_margin(X, y))
    conv = ln.linear_convnet_gd(X, y, 2, lr=0.2, steps=3000, seed=1, init_scale=0.3)
    assert not conv.diverged
    assert ib.fourier_l1_norm(ln.unit_margin(conv.beta[-1], X, y)) / opt - 1 < 0.06
    fc = ln.fc_linear_gd(X, y, 2, lr=0.2, steps=3000, seed=1, init_scale=0.3)
    assert np.cos(fc.angle[-1]) > 0.999


def test_linear_net_input_validation():
    X, y = ln.random_separable(5, 6, seed=0)
    with pytest.raises(ValueError, match="depth"):
        ln.linear_convnet_gd(X, y, 0, 0.1, 10)
    with pytest.raises(ValueError, match="lr"):
        ln.linear_convnet_gd(X, y, 2, -1.0, 10)
    with pytest.raises(ValueError, match="init_scale"):
        ln.linear_convnet_gd(X, y, 2, 0.1, 10, init_scale=0.0)
    with pytest.raises(ValueError, match="loss_floor"):
        ln.linear_convnet_gd(X, y, 2, 0.1, 10, loss_floor=2.0)
    with pytest.raises(ValueError, match="width"):
        ln.fc_linear_gd(X, y, 2, 0.1, 10, width=0)
    with pytest.raises(ValueError, match="separate"):
        ln.unit_margin(-ib.max_margin_direction(X, y), X, y)


def test_min_l1_margin_and_coordinate_descent():
    X, y = ln.random_separable(12, 5, seed=4)
    w, gamma = ib.max_l1_margin(X, y)
    assert np.abs(w).sum() <= 1 + 1e-9
    assert (y * (X @ w)).min() == pytest.approx(gamma, abs=1e-9)
    # independent check with cvxpy
    import cvxpy as cp
    v = cp.Variable(5)
    prob = cp.Problem(cp.Maximize(cp.min(cp.multiply(y, X @ v))), [cp.norm(v, 1) <= 1])
    prob.solve()
    assert gamma == pytest.approx(prob.value, abs=1e-6)
    cd = ib.coordinate_descent_margin(X, y, steps=20000, lr=0.1)
    assert cd.gap[-1] < 0.1 * gamma
    assert cd.norm == 1


def test_normalized_gd_margin_is_faster_and_matches_loop():
    X, y = ln.random_separable(10, 3, seed=5)
    fixed = ib.normalized_gd_margin(X, y, 2000, lr=1.0, normalized=False, record=[2000])
    normed = ib.normalized_gd_margin(X, y, 2000, lr=1.0, normalized=True, record=[2000])
    assert normed.gap[-1] < 0.2 * fixed.gap[-1]
    Z = y[:, None] * X
    w = np.zeros(3)
    for _ in range(2000):
        w = w + Z.T @ np.exp(-Z @ w) / 10
    assert np.allclose(fixed.w[-1], w)
    _, gamma = ib.max_margin_direction(X, y, return_margin=True)
    assert fixed.gamma == pytest.approx(gamma)
    with pytest.raises(ValueError, match="step size"):
        ib.normalized_gd_margin(X, y, 10, lr=0.0)


def test_min_nuclear_norm_commuting_equals_lp_and_recovers_low_rank():
    A, b, truth, Q, Dg = ib.commuting_sensing(6, 3, seed=1)
    Xn = ib.min_nuclear_norm(A, b)
    x = ib.min_l1_solution(Dg, b, nonnegative=True)
    assert np.trace(Xn) == pytest.approx(x.sum(), rel=1e-6)
    assert np.min(np.linalg.eigvalsh(Xn)) > -1e-7
    assert np.allclose(np.einsum("kij,ij->k", A, Xn), b, atol=1e-6)
    A, b, truth = ib.gaussian_sensing(6, 30, seed=0)  # plenty of measurements: exact recovery
    assert np.allclose(ib.min_nuclear_norm(A, b), truth, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        ib.min_nuclear_norm(np.ones((2, 3, 4)), np.ones(2))
    with pytest.raises(ValueError, match="PSD"):
        ib.min_nuclear_norm(np.eye(2)[None], np.array([-1.0]))


def test_factorized_sensing_gd_commuting_limit_and_gradient():
    A, b, truth, Q, Dg = ib.commuting_sensing(6, 3, seed=1)
    x = ib.min_l1_solution(Dg, b, nonnegative=True)
    ref = Q @ np.diag(x) @ Q.T
    run = ib.factorized_sensing_gd(A, b, 1e-3, ib.sensing_lr(A), 30000, tol=1e-24)
    assert run.converged and not run.diverged
    assert np.linalg.norm(run.X - ref) / np.linalg.norm(ref) < 1e-3
    # one step equals an explicit gradient step (finite-difference gradient of f(U))
    rng = np.random.default_rng(0)
    U0 = rng.standard_normal((6, 6))
    f = lambda U: np.sum((np.einsum("kij,ij->k", A, U @ U.T) - b) ** 2) / (2 * 3)
    G = np.zeros((6, 6))
    for i in range(6):
        for j in range(6):
            E = np.zeros((6, 6)); E[i, j] = 1e-6
            G[i, j] = (f(U0 + E) - f(U0 - E)) / 2e-6
    one = ib.factorized_sensing_gd(A, b, 1.0, 1e-3, 1, U0=U0, tol=0)
    assert np.allclose(one.U, U0 - 1e-3 * G, atol=1e-8)
    big = ib.factorized_sensing_gd(A, b, 1.0, 100.0, 50)
    assert big.diverged
    with pytest.raises(ValueError, match="init_scale"):
        ib.factorized_sensing_gd(A, b, 0.0, 0.1, 10)
    with pytest.raises(ValueError, match="b must"):
        ib.factorized_sensing_gd(A, b[:2], 0.1, 0.1, 10)


def test_eg_reaches_min_kl():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 9))
    y = X @ rng.uniform(0.2, 1.0, 9)
    w0 = np.full(9, 0.5)
    eg = ib.exponentiated_gradient(X, y, w0, lr=0.02, steps=40000, tol=1e-13)
    assert np.linalg.norm(eg.w - ib.min_kl_solution(X, y, w0)) < 1e-6


def test_parametrization_widget_every_point():
    spec = widgets.REGISTRY["ch08-parametrizations"]()
    assert spec.n_frames <= 40
    for params in spec.points():
        widgets.render(spec, params, strict=True)
    with pytest.raises(ValueError, match="architecture"):
        ln.parametrization_run("recurrent", 2)
