"""Tests of helpers.langevin against independent references (scipy quadrature, closed forms,
discrete Lyapunov equations, finite differences)."""

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.linalg import eigvals, solve_discrete_lyapunov

from helpers import langevin as L
from helpers import widgets


def fd_grad(f, x, h=1e-6):
    x = np.asarray(x, dtype=float)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape[-1:] if x.ndim else ()):
        e = np.zeros_like(x)
        e[..., idx[0]] = h
        g[..., idx[0]] = (f(x + e) - f(x - e)) / (2 * h)
    return g


# --- potentials ---------------------------------------------------------------------------

def test_double_well_values_and_gradient():
    x = np.linspace(-2, 2, 41)
    assert np.allclose(L.double_well(x, barrier=2.0), 2 * (x**2 - 1) ** 2)
    num = (L.double_well(x + 1e-6, 1.5) - L.double_well(x - 1e-6, 1.5)) / 2e-6
    assert np.allclose(L.double_well_grad(x, 1.5), num, atol=1e-6)
    with pytest.raises(ValueError):
        L.double_well(x, barrier=-1)
    with pytest.raises(ValueError):
        L.double_well_grad(x, barrier=0.0)


def test_multi_well_gradient_and_shape():
    pts = np.random.default_rng(0).uniform(-2, 2, (7, 3, 2))
    g = L.multi_well_grad(pts)
    assert g.shape == pts.shape
    gx = (L.multi_well(pts + [1e-6, 0]) - L.multi_well(pts - [1e-6, 0])) / 2e-6
    gy = (L.multi_well(pts + [0, 1e-6]) - L.multi_well(pts - [0, 1e-6])) / 2e-6
    assert np.allclose(g[..., 0], gx, atol=1e-5) and np.allclose(g[..., 1], gy, atol=1e-5)
    with pytest.raises(ValueError):
        L.multi_well(np.zeros((4, 3)))
    with pytest.raises(ValueError):
        L.multi_well_grad(np.zeros(3))


# --- trajectories -------------------------------------------------------------------------

def test_gradient_flow_quadratic_closed_form():
    lam, dt, x0 = 3.0, 0.01, np.array([1.5, -0.5])
    p = L.gradient_flow(lambda x: lam * x, x0, dt, 200)
    k = np.arange(201)[:, None]
    assert p.shape == (201, 2)
    assert np.allclose(np.asarray(p), (1 - lam * dt) ** k * x0)
    assert np.allclose(p.t, k.ravel() * dt) and not p.diverged


def test_gradient_flow_matches_ode_solver():
    sol = integrate.solve_ivp(lambda t, x: -L.double_well_grad(x), (0, 3), [0.3], rtol=1e-10, atol=1e-12)
    p = L.gradient_flow(L.double_well_grad, np.array([0.3]), 1e-4, 30000, record_every=30000)
    assert abs(p[-1, 0] - sol.y[0, -1]) < 1e-3


def test_gradient_flow_divergence_is_a_field():
    p = L.gradient_flow(lambda x: x**3, np.array([10.0]), 1.0, 50)
    assert p.diverged and p.diverged_at > 0
    assert np.all(np.isnan(np.asarray(p)[-1]))


def test_euler_maruyama_shapes_and_reproducible():
    a = L.euler_maruyama(L.double_well_grad, -1.0, 3.0, 1e-2, 100, seed=4, n_chains=5, record_every=10)
    b = L.euler_maruyama(L.double_well_grad, -1.0, 3.0, 1e-2, 100, seed=4, n_chains=5, record_every=10)
    assert a.shape == (11, 5, 1) and np.array_equal(a, b)
    assert np.allclose(a.t, np.arange(0, 101, 10) * 1e-2)
    c = L.euler_maruyama(L.multi_well_grad, np.zeros((3, 2)), 1.0, 1e-2, 10, seed=0, n_chains=3, burn_in=5)
    assert c.shape == (6, 3, 2) and np.allclose(c.t, np.arange(5, 11) * 1e-2)


def test_euler_maruyama_noiseless_is_gradient_flow():
    x0 = np.array([0.4, -0.3])
    a = L.euler_maruyama(L.multi_well_grad, x0, np.inf, 1e-2, 300, seed=0)
    b = L.gradient_flow(L.multi_well_grad, x0, 1e-2, 300)
    assert np.allclose(a[:, 0, :], b)


def test_euler_maruyama_ou_variance_matches_discrete_lyapunov():
    # OU with H = diag(1, 3): the EM chain's stationary covariance solves a discrete Lyapunov eq.
    H = np.diag([1.0, 3.0])
    beta, dt = 2.0, 0.05
    p = L.euler_maruyama(lambda x: x @ H, np.zeros(2), beta, dt, 600, seed=1, n_chains=4000, burn_in=400,
                         record_every=50)
    cov = np.cov(np.asarray(p).reshape(-1, 2).T)
    ref = solve_discrete_lyapunov(np.eye(2) - dt * H, 2 * dt / beta * np.eye(2))
    assert np.allclose(np.diag(cov), np.diag(ref), rtol=0.04)
    assert np.allclose(np.diag(ref), L.ula_stationary_variance(np.diag(H), beta, dt))


def test_euler_maruyama_divergence_flagged_not_raised():
    p = L.euler_maruyama(L.double_well_grad, 3.0, 1.0, 0.5, 40, seed=0, n_chains=3)
    assert p.diverged.all() and (p.diverged_at > 0).all()
    assert np.isnan(np.asarray(p)[-1]).all()


@pytest.mark.parametrize("kwargs", [dict(beta=0.0), dict(beta=-1), dict(dt=0.0), dict(dt=np.inf), dict(steps=-1),
                                    dict(n_chains=0), dict(steps=2.5), dict(x0=np.zeros((2, 1))),
                                    dict(x0=np.full(1, np.nan)), dict(burn_in=1000)])
def test_euler_maruyama_validation(kwargs):
    args = dict(grad=L.double_well_grad, x0=0.0, beta=1.0, dt=0.01, steps=10, seed=0, n_chains=3)
    args.update(kwargs)
    with pytest.raises(ValueError):
        L.euler_maruyama(**args)


def test_grad_shape_checked():
    with pytest.raises(ValueError, match="shaped like"):
        L.euler_maruyama(lambda x: x.sum(), 0.0, 1.0, 0.01, 5, seed=0)


# --- Gibbs measure ------------------------------------------------------------------------

def test_gibbs_density_quadratic_is_normal():
    grid = np.linspace(-6, 6, 2001)
    lam, beta = 2.0, 1.5
    p = L.gibbs_density(lambda x: 0.5 * lam * x**2, beta, grid)
    assert np.allclose(p, stats.norm.pdf(grid, scale=1 / math.sqrt(beta * lam)), atol=1e-6)
    assert abs(np.trapezoid(p, grid) - 1) < 1e-12


def test_gibbs_density_double_well_vs_quad():
    beta = 3.0
    z, _ = integrate.quad(lambda x: math.exp(-beta * (x * x - 1) ** 2), -np.inf, np.inf)
    grid = np.linspace(-2.5, 2.5, 5001)
    p = L.gibbs_density(L.double_well, beta, grid)
    assert np.allclose(p, np.exp(-beta * L.double_well(grid)) / z, rtol=1e-6)


def test_gibbs_density_2d_separable():
    gx, gy = np.linspace(-5, 5, 301), np.linspace(-4, 4, 241)
    f = lambda pts: 0.5 * pts[..., 0] ** 2 + 1.0 * pts[..., 1] ** 2  # noqa: E731
    p = L.gibbs_density(f, 2.0, (gx, gy))
    ref = stats.norm.pdf(gx, scale=math.sqrt(1 / 2.0))[:, None] * stats.norm.pdf(gy, scale=math.sqrt(1 / 4.0))[None]
    assert p.shape == (301, 241)
    assert np.allclose(p, ref, atol=1e-5)


def test_gibbs_density_validation():
    with pytest.raises(ValueError):
        L.gibbs_density(L.double_well, 1.0, np.array([1.0, 0.0, 2.0]))
    with pytest.raises(ValueError):
        L.gibbs_density(L.double_well, 0.0, np.linspace(-1, 1, 5))
    with pytest.raises(ValueError):
        L.gibbs_density(lambda x: np.ones(3), 1.0, np.linspace(-1, 1, 5))


@pytest.mark.parametrize("beta", [1.0, 3.0, 7.0])
def test_gibbs_moments_vs_scipy_quad(beta):
    w = lambda x: math.exp(-beta * (x * x - 1) ** 2)  # noqa: E731
    z = integrate.quad(w, -np.inf, np.inf)[0]
    ef = integrate.quad(lambda x: (x * x - 1) ** 2 * w(x), -np.inf, np.inf)[0] / z
    ex2 = integrate.quad(lambda x: x * x * w(x), -np.inf, np.inf)[0] / z
    assert abs(L.gibbs_expectation(L.double_well, beta, L.double_well, -3, 3) - ef) < 1e-8
    assert abs(L.gibbs_expectation(L.double_well, beta, np.square, -3, 3) - ex2) < 1e-8


def test_gibbs_expectation_quadratic_closed_form():
    # E x^2 = 1 / (beta lam), E f = 1 / (2 beta) for f = lam x^2 / 2
    v = L.gibbs_expectation(lambda x: 2.0 * x**2, 0.5, np.square, -20, 20)
    assert abs(v - 1 / (0.5 * 4.0)) < 1e-9
    with pytest.raises(ValueError):
        L.gibbs_expectation(L.double_well, 1.0, np.square, 1.0, -1.0)


def test_histogram_l1_small_for_exact_samples():
    grid = np.linspace(-5, 5, 2001)
    dens = stats.norm.pdf(grid)
    samples = stats.norm.rvs(size=200000, random_state=0)
    assert L.histogram_l1(samples, dens, grid) < 0.03
    assert L.histogram_l1(samples + 1.0, dens, grid) > 0.5


# --- escape times -------------------------------------------------------------------------

def _nested_quad(f, beta, a, b):
    inner = lambda y: integrate.quad(lambda z: math.exp(-beta * f(z)), -np.inf, y)[0]  # noqa: E731
    return beta * integrate.quad(lambda y: math.exp(beta * f(y)) * inner(y), a, b, limit=200)[0]


@pytest.mark.parametrize("beta", [2.0, 4.0])
def test_exact_escape_time_vs_nested_quadrature(beta):
    f = lambda x: (x * x - 1) ** 2  # noqa: E731
    ref = _nested_quad(f, beta, -1.0, 1.0)
    assert L.exact_escape_time(L.double_well, beta, -1.0, 1.0) == pytest.approx(ref, rel=1e-6)


def test_exact_escape_time_tilted_and_mirrored():
    f = lambda x: (x * x - 1) ** 2 + 0.3 * x  # noqa: E731
    ref = _nested_quad(f, 3.0, -1.0, 0.8)
    assert L.exact_escape_time(lambda x: (x * x - 1) ** 2 + 0.3 * x, 3.0, -1.0, 0.8) == pytest.approx(ref, rel=1e-6)
    # from +1 to -1 in f is from -1 to +1 in f(-x)
    g = lambda x: (x * x - 1) ** 2 - 0.3 * x  # noqa: E731
    ref2 = _nested_quad(g, 3.0, -1.0, 0.8)
    assert L.exact_escape_time(f, 3.0, 1.0, -0.8) == pytest.approx(ref2, rel=1e-6)


def test_exact_escape_time_brownian_closed_form():
    # f = 0 with a reflecting wall at 0: E tau(a -> b) = beta (b^2 - a^2) / 2
    t = L.exact_escape_time(lambda x: 0.0 * x, 2.0, 0.5, 2.0, lower=0.0)
    assert t == pytest.approx(2.0 * (4.0 - 0.25) / 2, rel=1e-6)
    with pytest.raises(ValueError):
        L.exact_escape_time(lambda x: 0.0 * x, 2.0, 0.5, 2.0)  # no confinement, no wall
    with pytest.raises(ValueError):
        L.exact_escape_time(L.double_well, 2.0, 1.0, 1.0)


def test_eyring_kramers_is_the_large_beta_limit():
    ratios = [L.exact_escape_time(L.double_well, b) / L.eyring_kramers(8, -4, 1, b) for b in (5.0, 10.0, 20.0)]
    assert ratios[0] > ratios[1] > ratios[2] > 1.0
    assert ratios[2] < 1.03
    with pytest.raises(ValueError):
        L.eyring_kramers(8, 0.0, 1, 2)


def test_mean_escape_time_drifted_brownian_motion():
    # f(x) = -c x: constant drift c towards the boundary at distance 1; E tau = 1 / c (Wald)
    c = 2.0
    r = L.mean_escape_time(lambda x: np.full_like(x, -c), 0.0, 4.0, 1e-3, 1.0, 2000, seed=0)
    assert r.censored == 0 and r.n_escaped == 2000
    assert r.mean == pytest.approx(1 / c, rel=0.03)


def test_mean_escape_time_double_well_vs_exact():
    r = L.mean_escape_time(L.double_well_grad, -1.0, 2.0, 5e-3, 1.0, 400, seed=1)
    assert abs(r.mean - L.exact_escape_time(L.double_well, 2.0)) < 3 * r.sem
    # the same run with a callable boundary gives identical times
    r2 = L.mean_escape_time(L.double_well_grad, -1.0, 2.0, 5e-3, lambda x: x[:, 0] >= 1.0, 400, seed=1)
    assert np.array_equal(r.times, r2.times)


def test_mean_escape_time_censoring_and_validation():
    r = L.mean_escape_time(L.double_well_grad, -1.0, 6.0, 1e-2, 1.0, 20, seed=0, max_steps=200)
    assert r.censored > 0 and r.censored + r.n_escaped == 20
    with pytest.raises(ValueError):
        L.mean_escape_time(L.double_well_grad, -1.0, 2.0, 1e-2, lambda x: x[:, 0] > -2, 10, seed=0)  # starts beyond
    with pytest.raises(ValueError):
        L.mean_escape_time(L.double_well_grad, 1.0, 2.0, 1e-2, 1.0, 10, seed=0)  # on the boundary
    with pytest.raises(ValueError):
        L.mean_escape_time(L.double_well_grad, -1.0, 2.0, 1e-2, lambda x: True, 10, seed=0)
    with pytest.raises(ValueError):
        L.mean_escape_time(L.double_well_grad, -1.0, 2.0, -1e-2, 1.0, 10, seed=0)
    with pytest.raises(ValueError):
        L.mean_escape_time(L.double_well_grad, np.array([[-1.0], [2.0]]), 2.0, 1e-2, 1.0, 2, seed=0)


def test_mean_escape_time_reports_divergence():
    r = L.mean_escape_time(L.double_well_grad, -1.0, 1.0, 0.6, 10.0, 5, seed=0, max_steps=500)
    assert r.diverged + r.n_escaped + r.censored == 5


# --- SQRA generator -----------------------------------------------------------------------

def test_sqra_generator_rows_and_detailed_balance():
    grid = np.linspace(-2, 2, 41)
    q = L.sqra_generator(L.double_well, 2.0, grid).toarray()
    assert np.allclose(q.sum(axis=1), 0)
    pi = np.exp(-2.0 * L.double_well(grid))
    flux = pi[:, None] * q
    assert np.allclose(flux, flux.T)


@pytest.mark.parametrize("lam,beta", [(1.0, 1.0), (3.0, 5.0)])
def test_sqra_gap_of_ou_is_the_curvature(lam, beta):
    # the OU generator (1/beta) d^2 - lam x d has eigenvalues 0, lam, 2 lam, ...
    s = 1 / math.sqrt(beta * lam)
    grid = np.linspace(-9 * s, 9 * s, 1201)
    gaps = L.spectral_gap(lambda x: 0.5 * lam * x**2, beta, grid, k=3)
    assert np.allclose(gaps, lam * np.array([1, 2, 3]), rtol=2e-4)


def test_sqra_gap_2d_separable():
    gx = np.linspace(-5, 5, 61)
    gy = np.linspace(-4, 4, 51)
    f = lambda p: 0.5 * 1.0 * p[..., 0] ** 2 + 0.5 * 2.5 * p[..., 1] ** 2  # noqa: E731
    lam = L.spectral_gap(f, 1.0, (gx, gy), k=2)
    assert np.allclose(lam, [1.0, 2.0], rtol=0.02)


def test_spectral_gap_matches_dense_eigenvalues():
    grid = np.linspace(-2.2, 2.2, 121)
    q = L.sqra_generator(L.double_well, 3.0, grid).toarray()
    ev = np.sort(np.real(eigvals(-q)))
    assert abs(ev[0]) < 1e-9
    assert np.allclose(L.spectral_gap(L.double_well, 3.0, grid, k=2), ev[1:3], rtol=1e-6)


def test_spectral_gap_validation():
    with pytest.raises(ValueError):
        L.spectral_gap(L.double_well, 1.0, np.array([0.0, 0.1, 0.3, 0.4]))  # not uniform
    with pytest.raises(ValueError):
        L.spectral_gap(L.double_well, 1.0, np.linspace(-1, 1, 5), k=5)
    with pytest.raises(ValueError):
        L.sqra_generator(L.double_well, -1.0, np.linspace(-1, 1, 5))


# --- Ornstein-Uhlenbeck, ULA and SGLD -------------------------------------------------------

def test_ula_variance_formula_vs_lyapunov():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    lam = np.array([0.5, 1.0, 4.0])
    H = q @ np.diag(lam) @ q.T
    H = 0.5 * (H + H.T)
    for eta, s in [(0.05, 0.0), (0.3, 1.5)]:
        cov = L.ula_stationary_covariance(H, 2.0, eta, s)
        eig = q.T @ cov @ q
        assert np.allclose(np.diag(eig), L.ula_stationary_variance(lam, 2.0, eta, s), rtol=1e-9)
    assert np.allclose(L.ula_stationary_variance(lam, 2.0, 1e-7), L.ou_stationary_variance(lam, 2.0), rtol=1e-5)
    assert np.isinf(L.ula_stationary_variance(4.0, 1.0, 0.6))
    with pytest.raises(ValueError):
        L.ula_stationary_covariance(H, 2.0, 0.6)
    with pytest.raises(ValueError):
        L.ou_stationary_variance(-1.0, 1.0)


def test_sgld_stationary_variance_with_gradient_noise():
    lam, beta, eta, s = 2.0, 1.0, 0.1, 2.0
    grad = lambda x, gen: lam * x + s * gen.standard_normal(x.shape)  # noqa: E731
    r = L.sgld(grad, np.zeros(5000), eta, beta, 300, seed=3, record_every=20)
    v = np.var(r.path[r.steps_saved >= 100])
    assert v == pytest.approx(float(L.ula_stationary_variance(lam, beta, eta, s)), rel=0.03)


def test_sgld_infinite_beta_is_gradient_descent():
    prob = L.sine_regression(32, seed=1)
    r = L.sgld(lambda w, gen: prob.grad(w), np.array([0.3, 2.5]), 0.05, np.inf, 200, seed=0)
    p = L.gradient_flow(prob.grad, np.array([0.3, 2.5]), 0.05, 200)
    assert np.allclose(r.x, p[-1])
    assert not r.diverged


def test_sgld_accepts_a_gradient_of_x_alone():
    r1 = L.sgld(lambda x: 2 * x, np.ones(3), 0.1, 5.0, 20, seed=7)
    r2 = L.sgld(lambda x, gen: 2 * x, np.ones(3), 0.1, 5.0, 20, seed=7)
    assert np.array_equal(r1.x, r2.x)


def test_sgld_divergence_and_validation():
    r = L.sgld(lambda x, gen: x**3, np.array([5.0]), 1.0, np.inf, 200, seed=0)
    assert r.diverged and r.diverged_at > 0
    with pytest.raises(ValueError):
        L.sgld(lambda x, gen: x, np.zeros(2), 0.0, 1.0, 10, seed=0)
    with pytest.raises(ValueError):
        L.sgld(lambda x, gen: x, np.zeros(2), 0.1, 0.0, 10, seed=0)
    with pytest.raises(ValueError):
        L.sgld(lambda x, gen: x[:1], np.zeros(2), 0.1, 1.0, 10, seed=0)


def test_sine_regression_gradients():
    prob = L.sine_regression(40, seed=2)
    w = np.linspace(-1, 3, 9)
    num = (prob.loss(w + 1e-6) - prob.loss(w - 1e-6)) / 2e-6
    assert np.allclose(prob.grad(w), num, atol=1e-6)
    # the minibatch gradient (sampling with replacement) is unbiased
    g = prob.minibatch_grad(4)
    gen = np.random.default_rng(0)
    est = np.mean([g(np.full(2000, 0.7), gen).mean() for _ in range(10)])
    assert est == pytest.approx(float(prob.grad(0.7)), abs=0.02)
    with pytest.raises(ValueError):
        prob.minibatch_grad(100)


def test_residence_times_synthetic():
    x = np.array([-1, -1, -0.2, 0.3, 1, 1, 1, 0.2, -1, -1, 0.8, 1.0])
    r = L.residence_times(x, 0.5, a=0.5)
    assert np.allclose(r.switch_times, [2.0, 4.0, 5.0])
    assert np.allclose(r.transitions, [1.5, 1.0, 0.5])
    assert np.allclose(r.stays, [2.0, 1.0])


def test_basins():
    assert list(L.basin_labels([-1.0, 0.5, 2.0], [-1, 1, 3], [0.0, 1.5])) == [0, 1, 2]
    v = np.array([3.0, 1.0, 2.0, 0.5, 4.0])
    assert list(L.local_minima_1d(v, None)) == [1, 3]


# --- widget ---------------------------------------------------------------------------------

def test_widget_every_grid_point_renders():
    spec = widgets.REGISTRY["ch04-langevin-2d"]()
    assert spec.n_frames <= 40
    for params in spec.points():
        fig = widgets.render(spec, params, strict=True)
        assert fig is not None
    bad = spec.compute(beta=1.0, dt=0.3)
    assert bad.diverged_at >= 0  # the largest step is meant to show divergence as a message
