"""Tests of helpers.lqr against independent references: scipy's DARE solver, long simulated
rollouts written out here, truncated series, finite differences and Hewer's policy iteration."""

import numpy as np
import pytest
import scipy.linalg

from helpers import lqr

SEEDS = [0, 1, 2, 3, 4, 5]


def _systems():
    out = [lqr.planning_system()[:5]]
    for s in SEEDS:
        d, k = [(3, 3), (4, 2), (2, 1), (5, 3), (3, 1), (4, 4)][s]
        out.append(lqr.random_system(d, k, seed=s, scale=1.0 + 0.1 * s))
    return out


def _stabilising_gain(A, B, Q, R, rng, spread=0.3):
    Kstar = lqr.optimal_gain(A, B, Q, R)
    while True:
        K = Kstar + spread * rng.standard_normal(Kstar.shape)
        if lqr.spectral_radius(A - B @ K) < 0.95:
            return K


def _simulated_cost(K, A, B, Q, R, Sigma0, steps=4000):
    # E_{x0} sum_t x'Qx + u'Ru with E[x0 x0'] = Sigma0 = L L': sum the costs from the columns of L
    L = np.linalg.cholesky(Sigma0)
    total = 0.0
    for i in range(L.shape[1]):
        x = L[:, i].copy()
        for _ in range(steps):
            u = -K @ x
            total += x @ Q @ x + u @ R @ u
            x = A @ x + B @ u
    return total


@pytest.mark.parametrize("system", _systems())
def test_riccati_and_gain_match_scipy(system):
    A, B, Q, R, _ = system
    P_ref = scipy.linalg.solve_discrete_are(A, B, Q, R)
    P = lqr.riccati(A, B, Q, R)
    assert np.allclose(P, P_ref, rtol=1e-9, atol=1e-9)
    K_ref = np.linalg.solve(R + B.T @ P_ref @ B, B.T @ P_ref @ A)
    assert np.max(np.abs(lqr.optimal_gain(A, B, Q, R) - K_ref)) < 1e-8
    assert lqr.is_stabilizing(A, B, K_ref)


def test_planning_numbers():
    A, B, Q, R, S0, K0 = lqr.planning_system()
    assert lqr.cost(lqr.optimal_gain(A, B, Q, R), A, B, Q, R, S0) == pytest.approx(4.8982785, abs=1e-7)
    assert lqr.cost(K0, A, B, Q, R, S0) == pytest.approx(9.1029, abs=1e-4)


@pytest.mark.parametrize("system", _systems())
def test_cost_and_covariance_match_rollouts(system):
    A, B, Q, R, S0 = system
    rng = np.random.default_rng(7)
    K = _stabilising_gain(A, B, Q, R, rng)
    assert lqr.cost(K, A, B, Q, R, S0) == pytest.approx(_simulated_cost(K, A, B, Q, R, S0), rel=1e-9)
    M = A - B @ K
    series, term = np.zeros_like(S0), S0.copy()
    for _ in range(4000):
        series += term
        term = M @ term @ M.T
    assert np.allclose(lqr.state_covariance(K, A, B, S0), series, rtol=1e-9, atol=1e-10)
    Pk = lqr.value_matrix(K, A, B, Q, R)
    assert np.trace(Pk @ S0) == pytest.approx(np.trace((Q + K.T @ R @ K) @ series), rel=1e-9)
    # the batched Kronecker solver used for slices agrees too
    assert lqr._batch_cost(K[None], A, B, Q, R, S0)[0] == pytest.approx(lqr.cost(K, A, B, Q, R, S0), rel=1e-9)


@pytest.mark.parametrize("system", _systems())
def test_policy_gradient_matches_finite_differences(system):
    A, B, Q, R, S0 = system
    rng = np.random.default_rng(11)
    for _ in range(2):
        K = _stabilising_gain(A, B, Q, R, rng)
        g = lqr.policy_gradient(K, A, B, Q, R, S0)
        fd = np.zeros_like(K)
        h = 1e-5
        for i in range(K.shape[0]):
            for j in range(K.shape[1]):
                E = np.zeros_like(K)
                E[i, j] = h
                fd[i, j] = (lqr.cost(K + E, A, B, Q, R, S0) - lqr.cost(K - E, A, B, Q, R, S0)) / (2 * h)
        assert np.linalg.norm(g - fd) <= 1e-6 * np.linalg.norm(g)


@pytest.mark.parametrize("system", _systems())
def test_gradient_vanishes_at_optimum_and_domination_holds(system):
    A, B, Q, R, S0 = system
    Kstar = lqr.optimal_gain(A, B, Q, R)
    assert np.linalg.norm(lqr.policy_gradient(Kstar, A, B, Q, R, S0)) < 1e-8 * max(1.0, np.linalg.norm(Kstar))
    ratios, gaps = lqr.gradient_domination_ratios(A, B, Q, R, S0, n=60, seed=1, spread=0.5)
    assert np.all(gaps >= -1e-9) and ratios.max() <= 0.25


def test_gauss_newton_half_step_is_policy_iteration():
    A, B, Q, R, S0 = lqr.random_system(4, 2, seed=3, scale=1.1)
    K = _stabilising_gain(A, B, Q, R, np.random.default_rng(0), spread=0.2)
    for _ in range(8):  # Hewer's iteration, written out independently
        P = scipy.linalg.solve_discrete_lyapunov((A - B @ K).T, Q + K.T @ R @ K)
        K_pi = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        assert np.allclose(lqr.gauss_newton_step(K, A, B, Q, R, S0, 0.5), K_pi, atol=1e-10)
        K = K_pi
    assert np.allclose(K, lqr.optimal_gain(A, B, Q, R), atol=1e-9)


def test_gauss_newton_unit_step_keeps_the_cost():
    A, B, Q, R, S0 = lqr.random_system(3, 2, seed=4, scale=1.05)
    K = _stabilising_gain(A, B, Q, R, np.random.default_rng(1))
    K1 = lqr.gauss_newton_step(K, A, B, Q, R, S0, 1.0)
    assert not np.allclose(K1, K)
    assert np.allclose(lqr.value_matrix(K1, A, B, Q, R), lqr.value_matrix(K, A, B, Q, R), rtol=1e-8)
    assert np.allclose(lqr.gauss_newton_step(K1, A, B, Q, R, S0, 1.0), K, atol=1e-8)


def test_steps_and_optimize():
    A, B, Q, R, S0, K0 = lqr.planning_system()
    g = lqr.policy_gradient(K0, A, B, Q, R, S0)
    S = lqr.state_covariance(K0, A, B, S0)
    assert np.allclose(lqr.gradient_step(K0, A, B, Q, R, S0, 0.01), K0 - 0.01 * g)
    assert np.allclose(lqr.natural_gradient_step(K0, A, B, Q, R, S0, 0.1), K0 - 0.1 * g @ np.linalg.inv(S))
    res = lqr.optimize(K0, "gauss_newton", 0.5, 10, A, B, Q, R, S0)
    assert res.status == "converged" and res.steps == 4
    assert np.allclose(res.gaps[:4], [4.2046554, 0.14977837, 4.78452743e-04, 5.40809708e-09], rtol=1e-6)
    gd = lqr.optimize(K0, "gd", 0.01, 50, A, B, Q, R, S0)
    assert np.all(np.diff(gd.costs) < 0) and gd.status == "max_steps" and len(gd.costs) == 51
    bad = lqr.optimize(K0, "gd", 1.0, 10, A, B, Q, R, S0)
    assert bad.left_stabilising_set and bad.rho_exit > 1 and np.allclose(bad.K, K0)
    lr, rate = lqr.theorem_step("natural", K0, A, B, Q, R, S0)
    nat = lqr.optimize(K0, "natural", lr, 300, A, B, Q, R, S0, tol=1e-12)
    pos = nat.gaps[:-1] > 1e-10
    assert np.all(nat.gaps[1:][pos] <= rate * nat.gaps[:-1][pos] + 1e-12)
    # projected gradient keeps the sparsity pattern and cannot beat the unstructured optimum
    mask = np.eye(3)
    st = lqr.optimize(K0, "gd", 0.05, 400, A, B, Q, R, S0, mask=mask)
    assert np.all(st.K[mask == 0] == 0) and st.gaps[-1] > 0 and st.grad_norms[-1] < 1e-6


def test_zeroth_order_gradient():
    A, B, Q, R, S0, K0 = lqr.planning_system()
    g = lqr.policy_gradient(K0, A, B, Q, R, S0)
    est = lqr.zeroth_order_gradient(K0, A, B, Q, R, 20000, 80, 0.01, seed=0, Sigma0=S0, estimator="two-point")
    assert np.linalg.norm(est - g) < 0.1 * np.linalg.norm(g)
    again = lqr.zeroth_order_gradient(K0, A, B, Q, R, 20000, 80, 0.01, seed=0, Sigma0=S0, estimator="two-point")
    assert np.array_equal(est, again)
    one = lqr.zeroth_order_gradient(K0, A, B, Q, R, 50000, 80, 0.05, seed=1, Sigma0=S0)
    assert np.linalg.norm(one - g) < 1.0 * np.linalg.norm(g)  # unbiased up to O(r^2), but noisy
    # rollout costs equal the plain loop
    x0 = np.array([[1.0, -2.0, 0.5]])
    c = lqr.rollout_costs(K0[None], A, B, Q, R, x0, 30)[0]
    x, ref = x0[0].copy(), 0.0
    for _ in range(30):
        u = -K0 @ x
        ref += x @ Q @ x + u @ R @ u
        x = A @ x + B @ u
    assert c == pytest.approx(ref, rel=1e-12)


def test_model_free_optimize_reduces_cost():
    A, B, Q, R, S0, K0 = lqr.planning_system()
    res = lqr.model_free_optimize(K0, A, B, Q, R, S0, 0.01, 15, 500, 40, 0.05, seed=0)
    assert res.status == "max_steps" and res.gaps[-1] < 0.1 * res.gaps[0] and res.rollouts_used == 15 * 1000


def test_smoothing_bias_scales_like_r_squared():
    A, B, Q, R, S0, K0 = lqr.planning_system()
    b = [lqr.smoothing_bias(K0, A, B, Q, R, S0, r, 4000, seed=0) for r in (0.01, 0.02, 0.04)]
    slope = np.polyfit(np.log([0.01, 0.02, 0.04]), np.log(b), 1)[0]
    assert 1.7 < slope < 2.3


def test_nonconvex_example_and_star_search():
    I3 = np.eye(3)
    K1 = np.array([[1, 0, -10], [-1, 1, 0], [0, 0, 1.0]])
    K2 = np.array([[1, -10, 0], [0, 1, 0], [-1, 0, 1.0]])
    assert lqr.is_stabilizing(I3, I3, K1) and lqr.is_stabilizing(I3, I3, K2)
    assert lqr.spectral_radius(I3 - (K1 + K2) / 2) == pytest.approx(np.sqrt(5))
    res = lqr.star_convexity_search(systems=60)
    assert res is not None and res.rho[0] < 1 and res.rho[-1] < 1 and res.rho.max() > 1


def test_errors():
    A, B, Q, R, S0, K0 = lqr.planning_system()
    with pytest.raises(ValueError, match="spectral radius"):
        lqr.cost(np.zeros((3, 3)), A, B, Q, R, S0)
    with pytest.raises(ValueError, match="shape"):
        lqr.cost(np.zeros((2, 3)), A, B, Q, R, S0)
    with pytest.raises(ValueError, match="square"):
        lqr.riccati(np.zeros((2, 3)), B, Q, R)
    with pytest.raises(ValueError, match="rows"):
        lqr.riccati(A, np.ones((2, 1)), Q, R)
    with pytest.raises(ValueError, match="positive definite"):
        lqr.riccati(A, B, Q, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        lqr.cost(K0, A, B, np.triu(np.ones((3, 3))), R, S0)
    with pytest.raises(ValueError, match="stabilisable"):
        lqr.riccati(np.diag([2.0, 0.5]), np.array([[0.0], [1.0]]), np.eye(2), np.eye(1))
    with pytest.raises(ValueError, match="step size"):
        lqr.gradient_step(K0, A, B, Q, R, S0, -0.1)
    with pytest.raises(ValueError, match="method"):
        lqr.optimize(K0, "adam", 0.1, 3, A, B, Q, R, S0)
    with pytest.raises(ValueError, match="steps"):
        lqr.optimize(K0, "gd", 0.1, -1, A, B, Q, R, S0)
    with pytest.raises(ValueError, match="spectral radius"):
        lqr.optimize(np.zeros((3, 3)), "gd", 0.1, 3, A, B, Q, R, S0)
    with pytest.raises(ValueError, match="mask"):
        lqr.optimize(K0, "gd", 0.1, 3, A, B, Q, R, S0, mask=np.ones((2, 2)))
    with pytest.raises(ValueError, match="positive definite"):
        lqr.natural_gradient_step(K0, A, B, Q, R, np.diag([1.0, 1.0, 0.0]), 0.1)
    with pytest.raises(ValueError, match="rollouts"):
        lqr.zeroth_order_gradient(K0, A, B, Q, R, 0, 10, 0.1, seed=0)
    with pytest.raises(ValueError, match="radius"):
        lqr.zeroth_order_gradient(K0, A, B, Q, R, 10, 10, -0.1, seed=0)
    with pytest.raises(ValueError, match="horizon"):
        lqr.zeroth_order_gradient(K0, A, B, Q, R, 10, 0, 0.1, seed=0)
    with pytest.raises(ValueError, match="estimator"):
        lqr.zeroth_order_gradient(K0, A, B, Q, R, 10, 10, 0.1, seed=0, estimator="three-point")
    with pytest.raises(ValueError, match="too large"):
        lqr.smoothing_bias(K0, A, B, Q, R, S0, 2.0, 100, seed=0)
    with pytest.raises(ValueError, match="natural"):
        lqr.theorem_step("gd", K0, A, B, Q, R, S0)
