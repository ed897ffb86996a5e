"""Tests of helpers.mean_field against independent references.

References: Monte Carlo and scipy quadrature for q, q' and E sigma^2; scipy's solve_ivp for
the radial ODE; a plain per-sample loop (written independently) for one SGD step; closed
forms for the risk of the radial ODE; brute-force finite differences for the gradient.
"""

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from helpers import mean_field as mf

ACTS = [((0.5, 1.5), (-2.5, 7.5)), ((-1.0, 0.3), (2.0, -1.0)), ((0.0, 2.0), (0.0, 1.0))]


def _quad(f, a):
    """E f(a G) by adaptive quadrature (split at the kinks)."""
    if a == 0:
        return f(0.0)
    g = lambda z: f(a * z) * norm.pdf(z)
    return integrate.quad(g, -12, 12, points=[-3, 0, 3], limit=400, epsabs=1e-12)[0]


@pytest.mark.parametrize("knots,levels", ACTS)
def test_q_and_second_moment_match_quadrature_and_monte_carlo(knots, levels):
    sig = lambda z: float(mf.sigma(z, knots, levels))
    G = np.random.default_rng(1).standard_normal(400_000)
    for a in [0.0, 1e-3, 0.3, 0.8, 1.44, 3.0, 12.0, -2.0]:
        ref_q = _quad(sig, abs(a))
        ref_m2 = _quad(lambda z: sig(z) ** 2, abs(a))
        assert mf.q(a, knots, levels) == pytest.approx(ref_q, abs=1e-7)
        assert mf.sigma_second_moment(a, knots, levels) == pytest.approx(ref_m2, abs=1e-6)
        s = mf.sigma(a * G, knots, levels)
        se = s.std() / np.sqrt(G.size)
        assert abs(mf.q(a, knots, levels) - s.mean()) < 5 * se + 1e-12
        assert abs(mf.sigma_second_moment(a, knots, levels) - (s ** 2).mean()) < 5 * (s ** 2).std() / np.sqrt(G.size) + 1e-12


@pytest.mark.parametrize("knots,levels", ACTS)
def test_q_prime_matches_finite_differences_and_monte_carlo(knots, levels):
    G = np.random.default_rng(2).standard_normal(400_000)
    for a in [0.05, 0.5, 1.0, 1.8, 4.0]:
        h = 1e-5
        fd = (mf.q(a + h, knots, levels) - mf.q(a - h, knots, levels)) / (2 * h)
        assert mf.q_prime(a, knots, levels) == pytest.approx(fd, abs=1e-6)
        # Monte Carlo of d/da E sigma(aG) = E[sigma'(aG) G]
        mc = mf.sigma_prime(a * G, knots, levels) * G
        assert abs(mf.q_prime(a, knots, levels) - mc.mean()) < 5 * mc.std() / np.sqrt(G.size) + 1e-12
    # odd in a, with the right limit at 0
    assert mf.q_prime(-1.0, knots, levels) == pytest.approx(-mf.q_prime(1.0, knots, levels))
    assert mf.q(0.0, knots, levels) == pytest.approx(float(mf.sigma(0.0, knots, levels)))


def test_q_vectorised_and_zero_limit_for_knot_at_zero():
    a = np.array([0.0, 0.5, 2.0])
    assert np.allclose(mf.q(a), [mf.q(v) for v in a])
    k = 1.0 / 2.0
    assert mf.q_prime(0.0, (0.0, 2.0), (0.0, 1.0)) == pytest.approx(k / np.sqrt(2 * np.pi))


def test_activation_validation():
    with pytest.raises(ValueError, match="t1 < t2"):
        mf.q(1.0, knots=(1.0, 1.0))
    with pytest.raises(ValueError, match="pairs"):
        mf.sigma(0.0, knots=(1.0,))
    with pytest.raises(ValueError, match="finite"):
        mf.q(np.nan)


def test_sample_data_law():
    x, y = mf.sample_data(20_000, 5, delta=0.5, seed=3)
    assert set(np.unique(y)) == {-1.0, 1.0}
    assert x[y > 0].std() == pytest.approx(1.5, rel=0.02)
    assert x[y < 0].std() == pytest.approx(0.5, rel=0.02)
    xb, yb = mf.sample_data(10, 3, seed=0, balanced=True)
    assert yb.sum() == 0
    with pytest.raises(ValueError, match="Delta"):
        mf.sample_data(10, 3, delta=1.0)
    with pytest.raises(ValueError, match="even"):
        mf.sample_data(9, 3, balanced=True)


def _reference_sgd_step(W, X, y, lr, knots, levels):
    """One mean-field SGD step written from the formula, one sample and one neuron at a time."""
    N = W.shape[0]
    grad = np.zeros_like(W)
    for x, yy in zip(X, y):
        yhat = sum(float(mf.sigma(W[i] @ x, knots, levels)) for i in range(N)) / N
        for i in range(N):
            # d/dw_i of (y - yhat)^2 is -2 (y - yhat) sigma'(w_i.x) x / N; the step is N lr times it
            grad[i] += -2.0 * (yy - yhat) * float(mf.sigma_prime(W[i] @ x, knots, levels)) * x / N
    return W - N * lr * grad / len(y)


def test_sgd_step_matches_reference_loop():
    N, d, B, lr = 6, 4, 5, 0.03
    res = mf.sgd_two_layer(N, d, 1, lr, seed=7, batch=B, times=[0.0, lr], n_eval=4, chunk=1)
    W0 = res.weights[0]
    # regenerate the same batch: the data stream of seed s comes from default_rng([s, 1])
    rg = np.random.default_rng([7, 1])
    yy = np.where(rg.random((1, B)) < 0.5, 1.0, -1.0)
    X = rg.standard_normal((1, B, d)) * (1.0 + 0.8 * yy)[..., None]
    ref = _reference_sgd_step(W0, X[0], yy[0], lr, mf.PAPER["knots"], mf.PAPER["levels"])
    assert np.allclose(res.weights[1], ref, atol=1e-12)


def test_sgd_gradient_is_the_gradient_of_the_risk():
    # the update direction equals -N lr x gradient of the batch loss: check by finite differences
    N, d, B, lr = 5, 3, 4, 1e-3
    res = mf.sgd_two_layer(N, d, 1, lr, seed=2, batch=B, times=[0.0, lr], n_eval=4, chunk=1, init_scale=2.0)
    rg = np.random.default_rng([2, 1])
    yy = np.where(rg.random((1, B)) < 0.5, 1.0, -1.0)[0]
    X = (rg.standard_normal((1, B, d)) * (1.0 + 0.8 * yy)[None, :, None])[0]
    W0 = res.weights[0]

    def loss(W):
        return np.mean((yy - mf.sigma(X @ W.T).mean(1)) ** 2)

    g = np.zeros_like(W0)
    for i in range(N):
        for k in range(d):
            E = np.zeros_like(W0)
            E[i, k] = 1e-6
            g[i, k] = (loss(W0 + E) - loss(W0 - E)) / 2e-6
    assert np.allclose(res.weights[1] - W0, -N * lr * g, atol=1e-7)


def test_sgd_seeds_vectorised_equal_single_runs_and_reproducible():
    a = mf.sgd_two_layer(20, 6, 30, 0.01, [3, 5], times=[0, 0.1, 0.3], n_eval=100)
    b = mf.sgd_two_layer(20, 6, 30, 0.01, 5, times=[0, 0.1, 0.3], n_eval=100)
    c = mf.sgd_two_layer(20, 6, 30, 0.01, 5, times=[0, 0.1, 0.3], n_eval=100)
    assert np.array_equal(b.risk, c.risk)
    assert np.allclose(a.risk[1], b.risk, atol=1e-13)
    assert np.allclose(a.weights[1], b.weights, atol=1e-13)
    assert b.times.tolist() == pytest.approx([0, 0.1, 0.3])


def test_sgd_risk_matches_direct_evaluation():
    res = mf.sgd_two_layer(30, 5, 10, 0.01, 1, times=[0.1], n_eval=200)
    Xe, ye = mf.sample_data(200, 5, seed=12345, balanced=True)
    W = res.weights[-1]
    assert res.risk[-1] == pytest.approx(np.mean((ye - mf.sigma(Xe @ W.T).mean(1)) ** 2), rel=1e-12)


def test_sgd_kernel_scaling_starts_at_zero_output_and_moves_less():
    res = mf.sgd_two_layer(40, 5, 0, 0.01, 0, scaling="kernel", times=[0.0], n_eval=100)
    assert res.risk[0] == pytest.approx(1.0)  # y_hat = 0 and y = +-1
    W = res.initial
    assert np.allclose(W[:20], W[20:])
    mv = mf.weight_movement([20, 80], 0.5, lr=0.01, n_eval=50)
    assert mv.movement[1, 1] < mv.movement[1, 0]  # kernel: shrinks with N
    assert mv.movement[1, 1] < 0.5 * mv.movement[0, 1]


def test_sgd_divergence_is_reported_not_raised():
    res = mf.sgd_two_layer(10, 5, 200, 1e3, 0, times=[0, 1e5, 2e5], n_eval=20, levels=(-1e200, 1e200))
    assert res.diverged
    assert np.isnan(res.risk[-1])


def test_sgd_validation():
    with pytest.raises(ValueError, match="lr"):
        mf.sgd_two_layer(10, 5, 10, -1.0)
    with pytest.raises(ValueError, match="N"):
        mf.sgd_two_layer(0, 5, 10, 0.1)
    with pytest.raises(ValueError, match="seed"):
        mf.sgd_two_layer(10, 5, 10, 0.1, seed=-1)
    with pytest.raises(ValueError, match="checkpoint"):
        mf.sgd_two_layer(10, 5, 10, 0.1, times=[5.0])
    with pytest.raises(ValueError, match="W0"):
        mf.sgd_two_layer(10, 5, 10, 0.1, W0=np.zeros((3, 5)))
    with pytest.raises(ValueError, match="even"):
        mf.sgd_two_layer(11, 5, 10, 0.1, scaling="kernel")
    with pytest.raises(ValueError, match="scaling"):
        mf.sgd_two_layer(10, 5, 10, 0.1, scaling="lazy")
    with pytest.raises(ValueError, match="n_eval"):
        mf.sgd_two_layer(10, 5, 10, 0.1, n_eval=3)


def test_radial_velocity_is_minus_twice_the_potential_gradient():
    # Psi(r) = -1/2 q(s+ r) + 1/2 q(s- r) + 1/2 q(s+ r) m+ + 1/2 q(s- r) m- ; dr/dt = -2 dPsi/dr
    r = np.array([0.3, 0.8, 2.0, 4.0])
    sp, sm = 1.8, 0.2
    mp, mm = mf.q(sp * r).mean(), mf.q(sm * r).mean()

    def psi(x):
        return -0.5 * mf.q(sp * x) + 0.5 * mf.q(sm * x) + 0.5 * mf.q(sp * x) * mp + 0.5 * mf.q(sm * x) * mm

    h = 1e-6
    ref = -2 * (psi(r + h) - psi(r - h)) / (2 * h)
    assert np.allclose(mf.radial_velocity(r), ref, atol=1e-6)


def test_radial_pde_matches_solve_ivp():
    from scipy.integrate import solve_ivp

    r0 = np.array([0.2, 0.6, 0.9, 1.3])
    times = [0.0, 1.0, 3.0, 6.0]
    res = mf.radial_pde(r0, 6.0, dt=0.005, times=times)
    ref = solve_ivp(lambda t, r: mf.radial_velocity(r), (0, 6), r0, t_eval=times, rtol=1e-10, atol=1e-12)
    assert np.allclose(res.radii, ref.y.T, atol=1e-7)
    # risk from the formula 1/2[(1 - m+)^2 + (1 + m-)^2]
    mp = mf.q(1.8 * ref.y.T).mean(1)
    mm = mf.q(0.2 * ref.y.T).mean(1)
    assert np.allclose(res.risk, 0.5 * ((1 - mp) ** 2 + (1 + mm) ** 2), atol=1e-6)
    assert np.all(res.risk_finite_N >= res.risk)


def test_radial_risk_is_the_large_d_limit_of_the_network_risk():
    # N neurons in orthogonal directions (d = N) with radii r: the population risk of the
    # network equals risk_finite_N of the ODE; check by Monte Carlo on fresh samples.
    r = np.array([0.5, 1.0, 2.0, 3.0])
    res = mf.radial_pde(r, 0.0, times=[0.0])
    W = np.diag(r)
    X, y = mf.sample_data(400_000, 4, seed=9)
    loss = (y - mf.sigma(X @ W.T).mean(1)) ** 2
    assert abs(res.risk_finite_N[0] - loss.mean()) < 5 * loss.std() / np.sqrt(y.size)


def test_radial_pde_validation_and_fixed_point():
    with pytest.raises(ValueError, match="non-negative"):
        mf.radial_pde([-1.0], 1.0)
    with pytest.raises(ValueError, match="dt"):
        mf.radial_pde([1.0], 1.0, dt=0)
    with pytest.raises(ValueError, match="times"):
        mf.radial_pde([1.0], 1.0, times=[2.0])
    with pytest.raises(ValueError, match="radii"):
        mf.radial_velocity([np.inf])
    one = mf.radial_pde([0.8], 100.0, dt=0.05, times=[100.0])
    assert abs(mf.radial_velocity(one.radii[-1])[0]) < 1e-4  # reached a fixed point


def test_quantile_radii_follow_chi_law():
    r = mf.quantile_radii(20_000, d=10, init_scale=2.0)
    assert np.mean(r ** 2) == pytest.approx(4.0, rel=1e-3)
    with pytest.raises(ValueError):
        mf.quantile_radii(0)


def test_risk_fluctuation_shapes_and_validation():
    fl = mf.risk_fluctuation([10, 40], 3, 0.2, lr=0.05, d=5, n_eval=50)
    assert fl.risk.shape == (2, 3)
    assert np.allclose(fl.std, fl.risk.std(axis=1, ddof=1))
    assert np.allclose(fl.scaled, fl.std * np.sqrt([10, 40]))
    with pytest.raises(ValueError, match="2 seeds"):
        mf.risk_fluctuation([10], 1, 0.2)
    with pytest.raises(ValueError, match="Ns"):
        mf.risk_fluctuation([0, 10], 3, 0.2)
    with pytest.raises(ValueError, match="even"):
        mf.weight_movement([11], 0.2)


def test_widget_state_and_plots():
    from helpers import plotting

    st = mf.particles_state(50, 5.0)
    assert st["sgd"].times[st["i"]] == pytest.approx(5.0)
    plotting.close(mf.plot_particles_state(st))
    with pytest.raises(ValueError):
        mf.particles_state(50, 30.0)


def test_radial_potential_gradient_gives_the_velocity():
    particles = np.array([0.1, 1.0, 3.0, 5.0])
    r = np.linspace(0.2, 6, 9)
    h = 1e-6
    dpsi = (mf.radial_potential(r + h, particles) - mf.radial_potential(r - h, particles)) / (2 * h)
    # the velocity of a particle at r inside this population: dr/dt = -2 dPsi/dr
    sp, sm = 1.8, 0.2
    mp, mm = mf.q(sp * particles).mean(), mf.q(sm * particles).mean()
    vel = sp * mf.q_prime(sp * r) * (1 - mp) - sm * mf.q_prime(sm * r) * (1 + mm)
    assert np.allclose(-2 * dpsi, vel, atol=1e-6)
    assert np.allclose(mf.radial_velocity(particles), -2 * (mf.radial_potential(particles + h, particles)
                                                             - mf.radial_potential(particles - h, particles)) / (2 * h),
                       atol=1e-6)
    with pytest.raises(ValueError):
        mf.radial_potential(r, [])


def test_radial_pde_adaptive_matches_rk4_and_validates_method():
    r0 = mf.quantile_radii(50)
    a = mf.radial_pde(r0, 15.0, dt=0.01, times=[0.0, 5.0, 15.0])
    b = mf.radial_pde(r0, 15.0, method="adaptive", rtol=1e-9, times=[0.0, 5.0, 15.0])
    assert np.allclose(a.radii, b.radii, atol=1e-5)
    assert np.allclose(a.risk, b.risk, atol=1e-7)
    with pytest.raises(ValueError, match="method"):
        mf.radial_pde(r0, 1.0, method="euler")
    with pytest.raises(ValueError, match="rtol"):
        mf.radial_pde(r0, 1.0, method="adaptive", rtol=0.0)
