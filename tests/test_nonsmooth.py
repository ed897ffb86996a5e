"""helpers.nonsmooth against brute force: one-sided difference quotients, nearby gradients."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import nonsmooth as ns

DIM = 3


# --------------------------------------------------------------------------- random functions
def _random_function(rng, depth=3):
    """A random composition of torch primitives R^3 -> R whose kinks pass through lattice points."""

    def leaf():
        A = torch.as_tensor(rng.integers(-2, 3, size=(DIM, DIM)).astype(np.float64))
        b = torch.as_tensor(rng.integers(-1, 2, size=DIM).astype(np.float64))
        return lambda x: A @ x + b

    unary = [
        torch.relu, torch.abs, F.relu, lambda u: F.leaky_relu(u, 0.1), lambda u: torch.clamp(u, -1.0, 1.0),
        lambda u: u.clamp(min=0.0), lambda u: torch.clamp_max(u, 1.0), F.hardtanh, lambda u: F.relu6(u + 6.0),
        lambda u: u.abs(), lambda u: u.relu(), torch.sin, torch.tanh, lambda u: 0.5 * u * u, abs,
        lambda u: torch.where(u > 0, u, 0.3 * u), lambda u: torch.where(u <= 0, -u, 2 * u), F.hardswish,
    ]
    binary = [
        torch.maximum, torch.minimum, lambda a, b: a + b, lambda a, b: a * b, lambda a, b: torch.max(a, b),
        lambda a, b: torch.where(a > b, a, b), lambda a, b: torch.fmin(a, b), lambda a, b: a - 2 * b,
        lambda a, b: torch.amax(torch.stack([a, b]), dim=0), lambda a, b: torch.min(torch.stack([a, b]), dim=0).values,
    ]

    def build(level):
        if level == 0:
            return leaf()
        if rng.random() < 0.5:
            g, h = unary[rng.integers(len(unary))], build(level - 1)
            return lambda x: g(h(x))
        g, h1, h2 = binary[rng.integers(len(binary))], build(level - 1), build(level - 1)
        return lambda x: g(h1(x), h2(x))

    body = build(depth)
    heads = [lambda u: u.sum(), lambda u: u.max(), lambda u: torch.amax(u), lambda u: u.min(),
             lambda u: torch.max(u, 0).values - u.mean(), lambda u: torch.abs(u).sum(), lambda u: u[0] - u[1]]
    head = heads[rng.integers(len(heads))]
    return lambda x: head(body(x))


def _quotient(f, x, d, t):
    x = torch.as_tensor(x, dtype=torch.float64)
    d = torch.as_tensor(d, dtype=torch.float64)
    with torch.no_grad():
        return float((f(x + t * d) - f(x)) / t)


def _brute_directional(f, x, d, t=1e-6):
    """Richardson-extrapolated one-sided difference quotient: error O(t^2) on a smooth piece."""
    return 2 * _quotient(f, x, d, t / 2) - _quotient(f, x, d, t)


# --------------------------------------------------------------------------- the examples
def test_identity_written_with_relus():
    f = lambda x: torch.relu(x) - torch.relu(-x)
    assert ns.autodiff_derivative(f, 0.0) == 0.0
    assert ns.correct_derivative(f, 0.0) == 1.0
    assert ns.one_sided_derivatives(f, 0.0) == (1.0, 1.0)


def test_identity_written_with_clamps():
    f = lambda x: torch.clamp(x, min=0) + torch.clamp(x, max=0)
    assert ns.autodiff_derivative(f, 0.0) == 2.0
    assert ns.correct_derivative(f, 0.0) == 1.0
    assert ns.correct_derivative(f, 0.0, direction=-1.0) == 1.0


def test_abs_at_zero():
    assert ns.directional_derivative(torch.abs, 0.0, 1.0) == 1.0
    assert ns.directional_derivative(torch.abs, 0.0, -1.0) == 1.0
    assert ns.one_sided_derivatives(torch.abs, 0.0) == (-1.0, 1.0)
    assert ns.correct_derivative(torch.abs, 0.0, direction=-2.0) == -1.0


# --------------------------------------------------------------------------- brute force, many functions
@pytest.mark.parametrize("fseed", range(60))
def test_directional_derivative_matches_difference_quotients(fseed):
    rng = np.random.default_rng(fseed)
    f = _random_function(rng, depth=int(rng.integers(1, 4)))
    points = [rng.integers(-1, 2, size=DIM).astype(float) for _ in range(4)]  # on the kinks
    points += [np.zeros(DIM), rng.standard_normal(DIM)]
    directions = [rng.standard_normal(DIM), rng.integers(-1, 2, size=DIM).astype(float), np.eye(DIM)[0]]
    for x in points:
        for d in directions:
            if not np.any(d):
                continue
            got = ns.directional_derivative(f, x, d)
            want = _brute_directional(f, x, d)
            assert got == pytest.approx(want, rel=1e-5, abs=1e-5), (fseed, x, d)


@pytest.mark.parametrize("fseed", range(60))
def test_correct_derivative_is_a_limit_of_gradients(fseed):
    rng = np.random.default_rng(1000 + fseed)
    f = _random_function(rng, depth=int(rng.integers(1, 4)))
    for x in [rng.integers(-1, 2, size=DIM).astype(float) for _ in range(3)] + [np.zeros(DIM)]:
        v = rng.standard_normal(DIM)
        g = ns.correct_derivative(f, x, direction=v)
        # the chosen piece is differentiable along x + s v; its gradient there tends to g
        y = x + 1e-7 * v
        h = 1e-9
        fd = np.array([(_quotient(f, y, e, h) + _quotient(f, y, e, -h)) / 2 for e in np.eye(DIM)])
        assert np.allclose(g, fd, rtol=1e-4, atol=1e-4), (fseed, x, g, fd)
        assert np.allclose(g, ns.autodiff_derivative(f, x + 1e-6 * v), rtol=1e-4, atol=1e-4)
        # and it reproduces the one-sided derivative along the direction that chose it
        assert float(g @ v) == pytest.approx(ns.directional_derivative(f, x, v), rel=1e-9, abs=1e-9)


def test_one_variable_clarke_interval():
    rng = np.random.default_rng(7)
    for _ in range(30):
        a, b, c = rng.standard_normal(3)
        f = lambda x: torch.maximum(a * x, b * x) + c * torch.abs(x) - torch.relu(-x)
        left, right = ns.one_sided_derivatives(f, 0.0)
        assert right == pytest.approx(max(a, b) + c, abs=1e-12)
        assert left == pytest.approx(min(a, b) - c + 1, abs=1e-12)
        g = ns.correct_derivative(f, 0.0, seed=int(rng.integers(1000)))
        assert min(left, right) - 1e-12 <= g <= max(left, right) + 1e-12


def test_agrees_with_autograd_at_smooth_points():
    rng = np.random.default_rng(3)
    f = lambda x: torch.sin(x[0]) * torch.relu(x[1]) + torch.abs(x).sum() + x.max()
    for _ in range(20):
        x = rng.standard_normal(DIM)
        d = rng.standard_normal(DIM)
        auto = ns.autodiff_derivative(f, x)
        assert np.allclose(ns.correct_derivative(f, x, seed=1), auto)
        assert ns.directional_derivative(f, x, d) == pytest.approx(float(auto @ d), rel=1e-12, abs=1e-12)


def test_reductions_with_dims_and_ties():
    X = torch.zeros(2, 3, dtype=torch.float64)
    d = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]], dtype=torch.float64)
    f = lambda x: torch.amax(x, dim=1).sum() + torch.amin(x, dim=(0, 1)) + x.max(dim=0, keepdim=True).values.sum()
    assert ns.directional_derivative(f, X, d) == pytest.approx(_brute_directional(f, X, d))
    g = lambda x: torch.amax(x, dim=(0, 1), keepdim=True).squeeze() + torch.min(x, 1)[0].sum()
    assert ns.directional_derivative(g, X, d) == pytest.approx(_brute_directional(g, X, d))


def test_constant_and_unused_inputs():
    assert ns.correct_derivative(lambda x: torch.tensor(3.0), 0.0) == 0.0
    assert ns.autodiff_derivative(lambda x: torch.tensor(3.0), 1.0) == 0.0
    assert ns.directional_derivative(lambda x: torch.tensor(3.0), 1.0, 1.0) == 0.0
    np.testing.assert_array_equal(ns.correct_derivative(lambda x: torch.relu(x[0]), [1.0, 2.0]), [1.0, 0.0])


def test_kakade_lee_random_direction_is_seeded():
    f = lambda x: torch.relu(x).sum() + torch.abs(x[0] - x[1])
    a = ns.correct_derivative(f, np.zeros(4), seed=5)
    b = ns.correct_derivative(f, np.zeros(4), seed=5)
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- errors
def test_errors():
    with pytest.raises(ValueError, match="single number"):
        ns.correct_derivative(lambda x: x * 2, [1.0, 2.0])
    with pytest.raises(ValueError, match="torch tensor"):
        ns.autodiff_derivative(lambda x: 1.0, 0.0)
    with pytest.raises(ValueError, match="shape"):
        ns.directional_derivative(torch.sum, [0.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        ns.directional_derivative(torch.sum, [np.nan], [1.0])
    with pytest.raises(ValueError, match="nonzero"):
        ns.correct_derivative(torch.sum, [0.0], direction=[0.0])
    with pytest.raises(ValueError, match="callable"):
        ns.autodiff_derivative(3, 0.0)
    with pytest.raises(ValueError, match="real number"):
        ns.directional_derivative(torch.sum, "abc", 1.0)
    with pytest.raises(ValueError, match="one variable"):
        ns.one_sided_derivatives(torch.sum, [0.0, 1.0])
    with pytest.raises(ValueError, match="empty"):
        ns.directional_derivative(torch.sum, [], [])
