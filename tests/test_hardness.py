"""Tests of helpers.hardness against closed forms, scipy quadrature, Monte Carlo and torch autograd."""

import numpy as np
import pytest
from scipy import integrate, optimize, special

from helpers import hardness as H

# ---------------------------------------------------------------- Funk-Hecke coefficients


def test_relu_kernel_matches_monte_carlo_random_features():
    rng = np.random.default_rng(0)
    d = 6
    x, y = rng.standard_normal((2, d))
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    w = H.uniform_sphere(400_000, d, seed=1)
    mc = np.mean(np.maximum(w @ x, 0) * np.maximum(w @ y, 0))
    assert abs(mc - H.relu_kernel(x @ y, d)) < 3e-4
    # Gaussian weights: Cho & Saul's arc-cosine kernel of degree 1 (times 1/2)
    g = rng.standard_normal((400_000, d))
    mc_g = np.mean(np.maximum(g @ x, 0) * np.maximum(g @ y, 0))
    assert abs(mc_g - H.relu_kernel(x @ y)) < 3e-3


@pytest.mark.parametrize("d", [3, 4, 5, 8, 12])
def test_coefficients_against_scipy_quad_and_closed_form(d):
    lam = H.relu_kernel_harmonic_coefficients(d, 8)
    ratio = H.sphere_area(d - 2) / H.sphere_area(d - 1)
    alpha = (d - 2) / 2
    for k in range(9):
        # an independent adaptive quadrature with scipy's Gegenbauer polynomials
        def integrand(t):
            pk = special.eval_gegenbauer(k, alpha, t) / special.eval_gegenbauer(k, alpha, 1.0)
            return H.relu_kernel(t, d) * pk * (1 - t * t) ** ((d - 3) / 2)

        ref = ratio * integrate.quad(integrand, -1, 1, limit=200, epsabs=1e-14)[0]
        assert abs(lam[k] - ref) < 1e-10 + 1e-7 * abs(ref)
    closed = H.relu_harmonic_coefficients_closed_form(d, 8)
    np.testing.assert_allclose(lam, closed, rtol=1e-8, atol=1e-14)
    assert abs(lam[1] - 1 / (4 * d * d)) < 1e-12  # c_1 = E[relu(t) t] = 1/(2d)
    assert np.all(np.abs(lam[3::2]) < 1e-13)  # odd degrees >= 3 vanish
    assert np.all(lam[0::2] > 0) and lam[1] > 0


def test_mercer_trace():
    # K(1) = 1/(2d) = sum_k N(d, k) lambda_k (addition theorem), the tail decays polynomially
    d = 5
    lam = H.relu_kernel_harmonic_coefficients(d, 60, nodes=600)
    total = sum(H._harmonic_dim(d, k) * lam[k] for k in range(61))
    assert 0.99 * H.relu_kernel(1.0, d) < total <= H.relu_kernel(1.0, d) + 1e-12


def test_coefficients_against_monte_carlo_on_the_sphere():
    # lambda_k = E_y[K(x.y) P_k(x.y)] for y uniform on the sphere (Funk-Hecke with the zonal harmonic at x)
    d = 5
    y = H.uniform_sphere(1_000_000, d, seed=3)
    t = y[:, 0]
    lam = H.relu_kernel_harmonic_coefficients(d, 4)
    for k in range(5):
        vals = H.relu_kernel(t, d) * H.legendre_sphere(k, d, t)
        se = vals.std() / np.sqrt(t.size)
        assert abs(vals.mean() - lam[k]) < 4 * se + 1e-12


def test_funk_hecke_of_a_polynomial():
    # f(t) = t^2 on S^{d-1}: lambda_0 = 1/d, lambda_2 = E[t^2 P_2(t)] = 2 / (d (d + 2)), others 0
    d = 7
    lam = H.funk_hecke(lambda t: t**2, d, 4)
    np.testing.assert_allclose(lam, [1 / d, 0, 2 / (d * (d + 2)), 0, 0], atol=1e-13)


@pytest.mark.parametrize("args", [(2, 3), (5, -1), (5.5, 3)])
def test_coefficient_validation(args):
    with pytest.raises(ValueError):
        H.relu_kernel_harmonic_coefficients(*args)


# ---------------------------------------------------------------- GD along harmonics


def test_gd_harmonic_residuals_follow_the_prediction():
    r = H.gd_harmonic_residuals(d=5, degrees=(1, 2, 3), width=1000, samples=2000, steps=100, seed=0)
    assert not r.diverged
    np.testing.assert_allclose(r.residual[0], 1.0, atol=1e-9)
    assert np.abs(r.residual[:, :2] - r.predicted[:, :2]).max() < 0.05
    assert r.residual[-1, 2] > 0.95  # lambda_3 = 0: never learned
    np.testing.assert_allclose(r.predicted, (1 - r.lr * r.lambdas)[None] ** r.steps[:, None])


def test_gd_harmonic_residuals_reference_and_divergence():
    # independent reference: explicit empirical kernel matrix power on the same sample
    rng = np.random.default_rng(0)
    r = H.gd_harmonic_residuals(d=4, degrees=(2,), width=50, samples=80, steps=6, record_every=3, seed=rng)
    rng = np.random.default_rng(0)
    X = H.uniform_sphere(80, 4, rng)
    W = H.uniform_sphere(50, 4, rng)
    e = H.uniform_sphere(1, 4, rng)[0]
    h = H.legendre_sphere(2, 4, X @ e) * np.sqrt(H._harmonic_dim(4, 2))
    Phi = np.maximum(X @ W.T, 0)
    K = Phi @ Phi.T / (50 * 80)
    M = np.eye(80) - r.lr * K
    for i, t in enumerate(r.steps):
        res = np.linalg.matrix_power(M, int(t)) @ h
        assert abs(r.residual[i, 0] - (h @ res) / (h @ h)) < 1e-10
    bad = H.gd_harmonic_residuals(d=4, degrees=(1,), width=20, samples=50, lr=1e6, steps=400, seed=0)
    assert bad.diverged and np.isnan(bad.residual[-1, 0])
    with pytest.raises(ValueError):
        H.gd_harmonic_residuals(d=2)
    with pytest.raises(ValueError):
        H.gd_harmonic_residuals(d=5, lr=-1.0)
    with pytest.raises(ValueError):
        H.gd_harmonic_residuals(d=5, degrees=())


# ---------------------------------------------------------------- the hard family


def test_subset_wave_data_moments_and_labels():
    data = H.subset_wave_data(12, [1, 4, 7, 9], 1.3, 200_000, seed=0)
    s = data.X[:, [1, 4, 7, 9]].sum(axis=1) / 2.0
    np.testing.assert_allclose(data.y, np.cos(1.3 * s))
    assert abs(data.y.mean() - np.exp(-1.3**2 / 2)) < 5e-3
    assert abs(data.y.var() - H.wave_variance(1.3)) < 5e-3
    # closed form against numerical integration over the standard normal
    for om in [0.0, 0.5, 2.0]:
        m2 = integrate.quad(lambda z: np.cos(om * z) ** 2 * np.exp(-z * z / 2) / np.sqrt(2 * np.pi), -np.inf, np.inf)[0]
        assert abs(m2 - np.exp(-om**2) - H.wave_variance(om)) < 1e-9
    r = H.subset_wave_data(10, 3, 1.0, 5, seed=1)
    assert r.subset.size == 3 and r.X.shape == (5, 10)


@pytest.mark.parametrize("kwargs", [
    dict(n=5, subset=[0, 5], omega=1.0, samples=3),
    dict(n=5, subset=[1, 1], omega=1.0, samples=3),
    dict(n=5, subset=0, omega=1.0, samples=3),
    dict(n=5, subset=6, omega=1.0, samples=3),
    dict(n=5, subset=2, omega=-1.0, samples=3),
    dict(n=5, subset=2, omega=1.0, samples=0),
    dict(n=0, subset=2, omega=1.0, samples=3),
])
def test_subset_wave_validation(kwargs):
    with pytest.raises(ValueError):
        H.subset_wave_data(seed=0, **kwargs)


def test_train_mlp_one_full_batch_step_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.standard_normal(40)
    out = H.train_mlp(X, y, X, y, width=7, epochs=1, lr=0.1, batch=40, momentum=0.0, seed=5)
    g = np.random.default_rng(5)
    W = torch.tensor(g.standard_normal((3, 7)) * np.sqrt(2 / 3), requires_grad=True)
    b = torch.zeros(7, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(g.standard_normal(7) * np.sqrt(1 / 7), requires_grad=True)
    c = torch.tensor(float(y.mean()), dtype=torch.float64, requires_grad=True)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    loss = 0.5 * ((torch.relu(Xt @ W + b) @ a + c - yt) ** 2).mean()
    assert abs(out.train_mse[0] - 2 * loss.item()) < 1e-12
    loss.backward()
    with torch.no_grad():
        for P in (W, b, a, c):
            P -= 0.1 * P.grad
        mse = ((torch.relu(Xt @ W + b) @ a + c - yt) ** 2).mean().item()
    assert abs(out.test_mse - mse) < 1e-10


def test_train_mlp_learns_a_smooth_target_and_reports_divergence():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2000, 5))
    y = np.maximum(X[:, 0], 0) - 0.5 * X[:, 1]
    res = H.train_mlp(X[:1500], y[:1500], X[1500:], y[1500:], width=50, epochs=30, lr=0.01, batch=32, seed=0)
    assert res.relative_test_mse < 0.05 and not res.diverged
    bad = H.train_mlp(X, y * 1e3, X, y, width=50, epochs=5, lr=10.0, seed=0)
    assert bad.diverged and np.isnan(bad.test_mse)
    with pytest.raises(ValueError):
        H.train_mlp(X, y[:10], X, y)
    with pytest.raises(ValueError):
        H.train_mlp(X, y, X[:, :2], y)
    with pytest.raises(ValueError):
        H.train_mlp(X, y, X, y, lr=0.0)


# ---------------------------------------------------------------- annealing and GD


def test_rippled_quadratic_gradient_and_bounds():
    f, g = H.rippled_quadratic(6, 0.7, 9.0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal(6)
        assert optimize.check_grad(f, g, x) < 1e-5
        assert 0 <= f(x) - 0.5 * x @ x <= 0.7 + 1e-12
    assert f(np.zeros(6)) == 0


def test_gradient_descent_on_a_quadratic():
    res = H.gradient_descent(lambda x: 2 * x, np.array([1.0, -3.0]), 0.1, 10, f=lambda x: float(x @ x))
    np.testing.assert_allclose(res.x, 0.8**10 * np.array([1.0, -3.0]))
    assert H.gradient_descent(lambda x: 2 * x, np.ones(2), 5.0, 2000).diverged
    with pytest.raises(ValueError):
        H.gradient_descent(lambda x: x, np.ones(2), -1.0, 5)


def test_metropolis_samples_the_gibbs_distribution_at_fixed_temperature():
    # f(x) = x^2 / 2 at temperature T: the chain's stationary law is N(0, T)
    T, steps = 0.5, 200_000
    res = H.simulated_annealing(lambda x: 0.5 * float(x @ x), np.zeros(1), np.full(steps, T), steps, seed=0,
                                step_size=1.0, adapt=False)
    # recover the chain's positions from the values: |x| = sqrt(2 f)
    assert abs(np.mean(2 * res.values[1000:]) - T) < 0.03
    assert 0.2 < res.accept_rate < 0.9


def test_simulated_annealing_escapes_ripples_where_gd_stalls():
    f, g = H.rippled_quadratic(10, 1.0, 30.0)
    x0 = np.random.default_rng(0).uniform(-3, 3, 10)
    gd = H.gradient_descent(g, x0, 0.01, 2000, f=f)
    sa = H.simulated_annealing(f, x0, H.geometric_schedule(1.0, 1e-3, 5000), 5000, seed=0, step_size=0.5)
    assert f(sa.x) < 1.0 < f(gd.x)
    a = H.simulated_annealing(f, x0, lambda t: 0.1, 50, seed=1)
    b = H.simulated_annealing(f, x0, np.full(50, 0.1), 50, seed=1)
    np.testing.assert_array_equal(a.x, b.x)


@pytest.mark.parametrize("kwargs", [
    dict(schedule=np.ones(3), steps=4),
    dict(schedule=np.array([1.0, 0.0, 1.0]), steps=3),
    dict(schedule=np.ones(3), steps=3, step_size=0.0),
    dict(schedule=np.ones(3), steps=0),
])
def test_simulated_annealing_validation(kwargs):
    with pytest.raises(ValueError):
        H.simulated_annealing(lambda x: float(x @ x), np.zeros(2), seed=0, **kwargs)
    with pytest.raises(ValueError):
        H.geometric_schedule(1.0, 0.0, 5)
