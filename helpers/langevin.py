"""Langevin diffusions for non-convex optimisation (chapter 4, Raginsky's talk).

Compute functions (numpy, vectorised over chains) for the overdamped Langevin equation

    dX_t = -grad f(X_t) dt + sqrt(2 / beta) dW_t,

its Euler-Maruyama discretisation (the unadjusted Langevin algorithm, ULA) and the
stochastic-gradient version SGLD (Welling & Teh 2011), together with the exact references a
chapter checks them against: the Gibbs density pi ~ exp(-beta f), the exact one-dimensional
mean first-passage time (the classical double-integral formula), the Eyring-Kramers law
(Bovier, Eckhoff, Gayrard & Klein 2004), a square-root-approximation (SQRA, Lie, Fackeldey &
Weber 2013) finite-volume discretisation of the generator and its spectral gap, and the
stationary variance of the Ornstein-Uhlenbeck process and of its ULA/SGLD discretisation.
Plot functions (``plot_*``) take results and return matplotlib Figures; ``landscape_spec`` is
the chapter's widget.

Shapes: a potential ``f`` is evaluated on arrays whose last axis holds the coordinates of a
point (``(..., d)``) when ``d >= 2``, and elementwise when ``d == 1``; a gradient ``grad``
maps an array of points ``(n_chains, d)`` to an array of the same shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from helpers import widgets
from helpers.repro import rng as _rng

# --------------------------------------------------------------------------------------
# validation helpers


def _positive(name, value, allow_inf=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if math.isnan(v) or v <= 0 or (math.isinf(v) and not allow_inf):
        what = "a positive number (np.inf allowed)" if allow_inf else "a positive finite number"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def _count(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_grad_output(g, x, name="grad"):
    g = np.asarray(g, dtype=float)
    if g.shape != x.shape:
        raise ValueError(f"{name} must return an array shaped like its input {x.shape}, got {g.shape}")
    return g


# --------------------------------------------------------------------------------------
# standard potentials


def double_well(x, barrier: float = 1.0):
    """The symmetric double well f(x) = barrier * (x^2 - 1)^2 (elementwise).

    Minima at x = -1, +1 with f = 0, a saddle (local maximum) at 0 of height ``barrier``;
    f''(+-1) = 8 * barrier and f''(0) = -4 * barrier.
    """
    barrier = _positive("barrier", barrier)
    x = np.asarray(x, dtype=float)
    return barrier * (x * x - 1.0) ** 2


def double_well_grad(x, barrier: float = 1.0):
    """Derivative of :func:`double_well`: 4 * barrier * x * (x^2 - 1) (elementwise)."""
    if barrier != 1.0:  # the default skips validation: this runs once per Langevin step
        barrier = _positive("barrier", barrier)
    x = np.asarray(x, dtype=float)
    return (4.0 * barrier) * x * (x * x - 1.0)


#: Tilts of the 2-D landscape: they make the four wells of different depths.
MULTI_WELL_TILT = (0.3, 0.15)


def multi_well(xy):
    """A 2-D landscape with four wells of different depths (points on the last axis).

    f(x, y) = (x^2 - 1)^2 + (y^2 - 1)^2 + 0.3 x + 0.15 y: the deepest well is near (-1, -1),
    the shallowest near (1, 1); neighbouring wells are separated by saddles of height about 1.
    """
    xy = np.asarray(xy, dtype=float)
    if xy.ndim == 0 or xy.shape[-1] != 2:
        raise ValueError(f"multi_well takes points with 2 coordinates on the last axis, got shape {xy.shape}")
    x, y = xy[..., 0], xy[..., 1]
    a, b = MULTI_WELL_TILT
    return (x * x - 1.0) ** 2 + (y * y - 1.0) ** 2 + a * x + b * y


def multi_well_grad(xy):
    """Gradient of :func:`multi_well`, same shape as ``xy``."""
    xy = np.asarray(xy, dtype=float)
    if xy.ndim == 0 or xy.shape[-1] != 2:
        raise ValueError(f"multi_well_grad takes points with 2 coordinates on the last axis, got shape {xy.shape}")
    a, b = MULTI_WELL_TILT
    g = 4.0 * xy * (xy * xy - 1.0)
    g[..., 0] += a
    g[..., 1] += b
    return g


# --------------------------------------------------------------------------------------
# trajectories


class Paths(np.ndarray):
    """A trajectory array with a time axis first; also carries ``t`` (times of the rows),
    ``diverged`` (per chain) and ``diverged_at`` (step index, -1 when finite).

    It behaves as a plain ndarray (``np.asarray(paths)`` gives one)."""

    def __array_finalize__(self, obj):
        self.t = getattr(obj, "t", None)
        self.diverged = getattr(obj, "diverged", None)
        self.diverged_at = getattr(obj, "diverged_at", None)


def _paths(array, t, diverged_at):
    out = np.asarray(array).view(Paths)
    out.t = np.asarray(t, dtype=float)
    out.diverged_at = np.asarray(diverged_at, dtype=int)
    out.diverged = out.diverged_at >= 0
    return out


def _chains(x0, n_chains):
    """Initial points as an (n_chains, d) array from a scalar, a (d,) or an (n_chains, d) x0."""
    x0 = np.asarray(x0, dtype=float)
    if not np.all(np.isfinite(x0)):
        raise ValueError("x0 must be finite")
    if x0.ndim == 0:
        return np.full((n_chains, 1), float(x0))
    if x0.ndim == 1:
        return np.tile(x0, (n_chains, 1))
    if x0.ndim == 2:
        if x0.shape[0] != n_chains:
            raise ValueError(f"x0 has {x0.shape[0]} rows but n_chains={n_chains}; pass one row per chain or a single point")
        return x0.copy()
    raise ValueError(f"x0 must be a scalar, a point (d,) or one point per chain (n_chains, d); got shape {x0.shape}")


def euler_maruyama(grad: Callable, x0, beta: float, dt: float, steps: int, seed=0, n_chains: int = 1, *,
                   record_every: int = 1, burn_in: int = 0, block: int = 256) -> Paths:
    """Euler-Maruyama for dX = -grad f(X) dt + sqrt(2/beta) dW, vectorised over chains.

    X_{k+1} = X_k - dt * grad(X_k) + sqrt(2 dt / beta) * xi_k with xi_k ~ N(0, I) independent;
    this is the unadjusted Langevin algorithm.  ``beta=np.inf`` gives the noiseless Euler
    scheme (gradient descent with step ``dt``).

    ``x0``: a scalar (d = 1), a point of shape (d,) (shared by all chains) or one point per
    chain (n_chains, d).  Returns a :class:`Paths` array of shape (n_saved, n_chains, d):
    the states at steps burn_in, burn_in + record_every, ... <= steps (step 0 is x0), with
    ``.t`` the matching times.  A chain whose state becomes non-finite is frozen at NaN from
    then on and flagged in ``.diverged`` / ``.diverged_at``.
    """
    beta = _positive("beta", beta, allow_inf=True)
    dt = _positive("dt", dt)
    steps = _count("steps", steps)
    n_chains = _count("n_chains", n_chains, 1)
    record_every = _count("record_every", record_every, 1)
    burn_in = _count("burn_in", burn_in)
    block = _count("block", block, 1)
    if burn_in > steps:
        raise ValueError(f"burn_in={burn_in} exceeds steps={steps}")
    gen = _rng(seed)
    x = _chains(x0, n_chains)
    d = x.shape[1]
    sigma = 0.0 if math.isinf(beta) else math.sqrt(2.0 * dt / beta)
    saved_steps = np.arange(burn_in, steps + 1, record_every)
    out = np.empty((len(saved_steps), n_chains, d))
    div_at = np.full(n_chains, -1)
    j = 0
    if saved_steps[0] == 0:
        out[0] = x
        j = 1
    k = 0
    step = np.empty_like(x)
    with np.errstate(over="ignore", invalid="ignore"):
        while k < steps:
            m = min(block, steps - k)
            if sigma > 0:
                noise = gen.standard_normal((m, n_chains, d))
                noise *= sigma  # scaled once per block: the per-step loop is what costs
            for i in range(m):
                g = _check_grad_output(grad(x), x) if k == 0 else grad(x)
                # in place, through a scratch array (grad may return x itself)
                np.multiply(g, dt, out=step)
                x -= step
                if sigma > 0:
                    x += noise[i]
                k += 1
                if j < len(saved_steps) and saved_steps[j] == k:
                    out[j] = x
                    j += 1
            bad = ~np.all(np.isfinite(x), axis=1)
            if bad.any():
                new = bad & (div_at < 0)
                if new.any():
                    # detected at the end of a block: the first non-finite step is within `block` steps
                    div_at[new] = k
                x[bad] = np.nan
    out[~np.isfinite(out)] = np.nan  # overflowed states are shown as gaps, never as numbers
    return _paths(out, saved_steps * dt, div_at)


def gradient_flow(grad: Callable, x0, dt: float, steps: int, *, record_every: int = 1) -> Paths:
    """Explicit Euler discretisation of the gradient flow dx/dt = -grad f(x).

    ``x0`` may have any shape accepted by ``grad`` (e.g. one point (d,), or many (n, d));
    returns a :class:`Paths` array of shape (n_saved, *x0.shape) at steps 0, record_every, ...
    Divergence (a non-finite state) stops the run: later rows are NaN and ``.diverged`` is set.
    """
    dt = _positive("dt", dt)
    steps = _count("steps", steps)
    record_every = _count("record_every", record_every, 1)
    x = np.array(x0, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError("x0 must be finite")
    saved = np.arange(0, steps + 1, record_every)
    out = np.full((len(saved), *x.shape), np.nan)
    out[0] = x
    j, div_at = 1, -1
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, steps + 1):
            g = _check_grad_output(grad(x), x) if k == 1 else grad(x)
            x = x - dt * g
            if j < len(saved) and saved[j] == k:
                out[j] = x
                j += 1
            # checking finiteness every step costs as much as the step; every 32 steps is enough
            if (k % 32 == 0 or k == steps) and not np.all(np.isfinite(x)):
                div_at = k
                break
    if div_at >= 0:
        out[saved >= div_at - 32] = np.where(np.isfinite(out[saved >= div_at - 32]), out[saved >= div_at - 32], np.nan)
    return _paths(out, saved * dt, div_at)


# --------------------------------------------------------------------------------------
# the Gibbs measure


def _grid_1d(name, g):
    g = np.asarray(g, dtype=float)
    if g.ndim != 1 or g.size < 2 or not np.all(np.isfinite(g)) or np.any(np.diff(g) <= 0):
        raise ValueError(f"{name} must be a strictly increasing 1-D array of at least 2 finite points")
    return g


def _trapz(y, x, axis=-1):
    from scipy.integrate import trapezoid

    return trapezoid(y, x, axis=axis)


def gibbs_density(f: Callable, beta: float, grid):
    """The Gibbs density exp(-beta f) / Z on a grid, normalised by the trapezoid rule.

    ``grid``: a 1-D increasing array (d = 1; ``f`` is applied elementwise), or a pair
    ``(gx, gy)`` of such arrays (d = 2; ``f`` receives points of shape (nx, ny, 2)) and the
    result has shape (nx, ny) with ``[i, j]`` the density at ``(gx[i], gy[j])``.  The grid
    should cover the region where the density is not negligible: Z is computed on it.
    """
    beta = _positive("beta", beta)
    if isinstance(grid, (tuple, list)) and len(grid) == 2 and np.ndim(grid[0]) == 1:
        gx, gy = _grid_1d("grid[0]", grid[0]), _grid_1d("grid[1]", grid[1])
        pts = np.stack(np.meshgrid(gx, gy, indexing="ij"), axis=-1)
        fv = np.asarray(f(pts), dtype=float)
        if fv.shape != pts.shape[:2]:
            raise ValueError(f"f must map points (nx, ny, 2) to values (nx, ny); got {fv.shape}")
        logw = -beta * (fv - np.min(fv))
        w = np.exp(logw)
        z = _trapz(_trapz(w, gy, axis=1), gx)
        return w / z
    g = _grid_1d("grid", grid)
    fv = np.asarray(f(g), dtype=float)
    if fv.shape != g.shape:
        raise ValueError(f"f must map the grid elementwise; got shape {fv.shape} for a grid of {g.shape}")
    if not np.all(np.isfinite(fv)):
        raise ValueError("f is not finite on the grid")
    w = np.exp(-beta * (fv - fv.min()))
    return w / _trapz(w, g)


def gibbs_expectation(f: Callable, beta: float, g: Callable, lo: float, hi: float, n: int = 20001) -> float:
    """E_pi[g(X)] for the 1-D Gibbs law pi ~ exp(-beta f) on [lo, hi] (Simpson's rule, n points)."""
    from scipy.integrate import simpson

    beta = _positive("beta", beta)
    n = _count("n", n, 3)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"need finite lo < hi, got {lo}, {hi}")
    x = np.linspace(lo, hi, n)
    fv = np.asarray(f(x), dtype=float)
    w = np.exp(-beta * (fv - fv.min()))
    return float(simpson(w * np.asarray(g(x), dtype=float), x=x) / simpson(w, x=x))


def histogram_l1(samples, density, grid, bins: int = 60) -> float:
    """L1 distance between a histogram of 1-D samples and a density given on a fine grid.

    The density is averaged over each bin (trapezoid on the grid points inside it) before the
    comparison, so the value measures sampling error, not binning error.
    """
    samples = np.asarray(samples, dtype=float).ravel()
    samples = samples[np.isfinite(samples)]
    grid = _grid_1d("grid", grid)
    density = np.asarray(density, dtype=float)
    if density.shape != grid.shape:
        raise ValueError("density and grid must have the same shape")
    edges = np.linspace(grid[0], grid[-1], bins + 1)
    hist, _ = np.histogram(samples, bins=edges)
    width = edges[1] - edges[0]
    p_hist = hist / (samples.size * width)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    p_true = np.diff(np.interp(edges, grid, cdf)) / width
    # mass outside the grid counts as error too
    outside = 1.0 - hist.sum() / samples.size
    return float(np.sum(np.abs(p_hist - p_true)) * width + outside)


# --------------------------------------------------------------------------------------
# escape times


@dataclass
class EscapeResult:
    """First-passage times of independent chains (NaN where a chain did not escape).

    ``mean`` is the sample mean when every chain escaped; when ``censored`` chains reached
    ``max_steps`` first it is the exponential-law estimate sum(min(T_i, T_max)) / n_escaped
    (still a lower-bias estimate when escape times are close to exponential).
    """

    times: np.ndarray
    mean: float
    sem: float
    n_escaped: int
    censored: int
    dt: float
    beta: float
    diverged: int = 0


def _boundary_test(boundary, x0row):
    if callable(boundary):
        def test(x):
            hit = np.asarray(boundary(x), dtype=bool)
            if hit.shape != (x.shape[0],):
                raise ValueError(f"boundary(x) must return one bool per chain, shape ({x.shape[0]},), got {hit.shape}")
            return hit
        return test
    try:
        b = float(boundary)
    except (TypeError, ValueError):
        raise ValueError("boundary must be a number (a level of the first coordinate) or a callable x -> bool array") from None
    if not np.isfinite(b):
        raise ValueError("boundary must be finite")
    start = float(np.mean(x0row[:, 0]))
    if start == b:
        raise ValueError("x0 lies on the boundary; the escape time would be 0")
    if np.any((x0row[:, 0] - b) * (start - b) <= 0):
        raise ValueError("all chains must start on the same side of the boundary")
    if start < b:
        return lambda x: x[:, 0] >= b
    return lambda x: x[:, 0] <= b


def mean_escape_time(grad: Callable, x0, beta: float, dt: float, boundary, n_chains: int, seed=0,
                     max_steps: int = 1_000_000, *, block: int = 512) -> EscapeResult:
    """Mean first-passage time of Euler-Maruyama Langevin chains from ``x0`` to a boundary.

    ``boundary``: a number b (the chain escapes when its first coordinate reaches b, from
    the side where x0 lies) or a callable mapping states (n, d) to a bool array (n,).
    Chains run in parallel until each escapes or ``max_steps`` steps pass; the time of chain i
    is dt * (number of steps until its first state beyond the boundary).
    """
    beta = _positive("beta", beta)
    dt = _positive("dt", dt)
    n_chains = _count("n_chains", n_chains, 1)
    max_steps = _count("max_steps", max_steps, 1)
    block = _count("block", block, 1)
    gen = _rng(seed)
    x = _chains(x0, n_chains)
    test = _boundary_test(boundary, x)
    if np.any(test(x)):
        raise ValueError("some chains start beyond the boundary")
    d = x.shape[1]
    sigma = math.sqrt(2.0 * dt / beta)
    steps_at = np.full(n_chains, -1)
    diverged = np.zeros(n_chains, dtype=bool)
    active = np.arange(n_chains)
    k = 0
    _check_grad_output(grad(x), x)
    with np.errstate(over="ignore", invalid="ignore"):
        while active.size and k < max_steps:
            m = min(block, max_steps - k)
            n = active.size
            noise = sigma * gen.standard_normal((m, n, d))
            buf = np.empty((m, n, d))
            for i in range(m):
                x = x - dt * grad(x) + noise[i]
                buf[i] = x
            # the boundary is checked once per block on every stored state (cheaper than per step)
            hit = test(buf.reshape(m * n, d)).reshape(m, n)
            hit |= ~np.all(np.isfinite(buf), axis=2)
            any_hit = hit.any(axis=0)
            if any_hit.any():
                first = np.argmax(hit, axis=0)
                for c in np.flatnonzero(any_hit):
                    state = buf[first[c], c]
                    if np.all(np.isfinite(state)):
                        steps_at[active[c]] = k + first[c] + 1
                    else:  # a diverged chain never escapes properly: report and drop it
                        diverged[active[c]] = True
                keep = ~any_hit
                active, x = active[keep], x[keep]
            k += m
    times = np.where(steps_at >= 0, steps_at * dt, np.nan)
    esc = np.isfinite(times)
    n_esc = int(esc.sum())
    censored = int(n_chains - n_esc - diverged.sum())
    if n_esc == 0:
        mean = sem = float("nan")
    elif censored == 0:
        mean = float(times[esc].mean())
        sem = float(times[esc].std(ddof=1) / math.sqrt(n_esc)) if n_esc > 1 else float("nan")
    else:
        mean = float((times[esc].sum() + censored * max_steps * dt) / n_esc)
        sem = mean / math.sqrt(n_esc)
    return EscapeResult(times, mean, sem, n_esc, censored, dt, beta, int(diverged.sum()))


def _auto_lower(f, beta, start, target):
    """A left end far enough that exp(-beta f) is negligible there (for the inner integral)."""
    lo_ref = float(np.min(f(np.linspace(min(start, target), max(start, target), 2001))))
    step = max(abs(target - start), 1.0)
    z = min(start, target)
    for _ in range(200):
        z -= 0.25 * step
        if beta * (float(f(np.array([z]))[0]) - lo_ref) > 50.0:
            return z
    raise ValueError("exp(-beta f) does not decay to the left of the start; pass `lower` explicitly "
                     "(the formula needs a confining potential or a reflecting wall)")


def exact_escape_time(f: Callable, beta: float, start: float = -1.0, target: float = 1.0,
                      lower: float | None = None, n: int = 40001) -> float:
    """Exact mean first-passage time of the 1-D Langevin diffusion from ``start`` to ``target``.

    For dX = -f'(X) dt + sqrt(2/beta) dW and start < target,

        E tau = beta * int_start^target exp(beta f(y)) int_lower^y exp(-beta f(z)) dz dy,

    with ``lower = -inf`` (a reflecting wall at ``lower`` if finite; by default a point far
    enough left that the rest is negligible).  start > target is handled by reflection
    x -> -x.  Computed with cumulative trapezoid sums on ``n`` points (relative error ~1e-7).
    """
    from scipy.integrate import cumulative_trapezoid

    beta = _positive("beta", beta)
    n = _count("n", n, 101)
    start, target = float(start), float(target)
    if not (np.isfinite(start) and np.isfinite(target)) or start == target:
        raise ValueError("start and target must be finite and different")
    if start > target:  # mirror the problem so that we always move to the right
        g = lambda x: f(-np.asarray(x))  # noqa: E731
        return exact_escape_time(g, beta, -start, -target, None if lower is None else -lower, n)
    if lower is None:
        lower = _auto_lower(f, beta, start, target)
    elif not lower < start:
        raise ValueError(f"lower={lower} must lie left of start={start}")
    z = np.linspace(lower, target, n)
    fz = np.asarray(f(z), dtype=float)
    if fz.shape != z.shape or not np.all(np.isfinite(fz)):
        raise ValueError("f must be finite and elementwise on [lower, target]")
    c = fz.min()
    inner = cumulative_trapezoid(np.exp(-beta * (fz - c)), z, initial=0.0)
    outer = np.exp(beta * (fz - c)) * inner
    # integrate the outer integrand from start to target (interpolating at start)
    mask = z >= start
    ys = np.concatenate([[start], z[mask]])
    vals = np.concatenate([[np.interp(start, z, outer)], outer[mask]])
    return float(beta * _trapz(vals, ys))


def eyring_kramers(f2_min: float, f2_saddle: float, barrier: float, beta: float) -> float:
    """Eyring-Kramers mean transition time 2 pi / sqrt(f''(min) |f''(saddle)|) * exp(beta * barrier).

    The 1-D form of the law proved by Bovier, Gayrard & Klein (2004); it is the leading term
    as beta -> infinity (relative corrections of order 1/beta).
    """
    f2_min = _positive("f2_min", f2_min)
    if not np.isfinite(f2_saddle) or f2_saddle == 0:
        raise ValueError("f2_saddle must be the (non-zero) curvature at the saddle")
    barrier = _positive("barrier", barrier)
    beta = _positive("beta", beta)
    return float(2 * math.pi / math.sqrt(f2_min * abs(f2_saddle)) * math.exp(beta * barrier))


# --------------------------------------------------------------------------------------
# SQRA discretisation of the generator


def sqra_generator(f: Callable, beta: float, grid):
    """Square-root approximation (SQRA) of the Langevin generator on a uniform grid.

    The generator L g = (1/beta) Laplacian g - grad f . grad g is replaced by the rate matrix
    Q with Q[i, j] = (1 / (beta h^2)) exp(-beta (f_j - f_i) / 2) for grid neighbours i ~ j
    (h the spacing along their axis) and rows summing to zero (Lie, Fackeldey & Weber 2013).
    Q is reversible with respect to the discrete Gibbs weights, so -Q is similar to a
    symmetric positive semi-definite matrix.  ``grid``: a 1-D uniform array, or a pair of
    them (row-major order of the points, as in :func:`gibbs_density`).
    Returns a scipy.sparse CSR matrix.
    """
    import scipy.sparse as sp

    beta = _positive("beta", beta)
    fv, axes = _grid_values(f, grid)
    n = fv.size
    flat = fv.ravel()
    rows, cols, vals = [], [], []
    idx = np.arange(n).reshape(fv.shape)
    for ax, g in enumerate(axes):
        h = g[1] - g[0]
        a = np.take(idx, np.arange(fv.shape[ax] - 1), axis=ax).ravel()
        b = np.take(idx, np.arange(1, fv.shape[ax]), axis=ax).ravel()
        diff = flat[b] - flat[a]
        rate = 1.0 / (beta * h * h)
        rows += [a, b]
        cols += [b, a]
        vals += [rate * np.exp(-0.5 * beta * diff), rate * np.exp(0.5 * beta * diff)]
    rows, cols, vals = map(np.concatenate, (rows, cols, vals))
    q = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    q = q - sp.diags(np.asarray(q.sum(axis=1)).ravel())
    return q.tocsr()


def _grid_values(f, grid):
    if isinstance(grid, (tuple, list)) and len(grid) == 2 and np.ndim(grid[0]) == 1:
        axes = [_grid_1d("grid[0]", grid[0]), _grid_1d("grid[1]", grid[1])]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        fv = np.asarray(f(pts), dtype=float)
        if fv.shape != pts.shape[:2]:
            raise ValueError(f"f must map points (nx, ny, 2) to (nx, ny); got {fv.shape}")
    else:
        axes = [_grid_1d("grid", grid)]
        fv = np.asarray(f(axes[0]), dtype=float)
        if fv.shape != axes[0].shape:
            raise ValueError("f must map the grid elementwise")
    for g in axes:
        dg = np.diff(g)
        if g.size < 3 or not np.allclose(dg, dg[0], rtol=1e-8, atol=0):
            raise ValueError("the SQRA grid must be uniform with at least 3 points per axis")
    if not np.all(np.isfinite(fv)):
        raise ValueError("f is not finite on the grid")
    return fv, axes


def spectral_gap(f: Callable, beta: float, grid, k: int = 1):
    """The first ``k`` non-zero eigenvalues 0 < lambda_1 <= ... of -Q (Q from :func:`sqra_generator`).

    lambda_1 is the spectral gap: the exponential rate at which the law of the diffusion
    (restricted to the grid, reflecting at its ends) approaches the Gibbs measure.  Uses the
    symmetrisation Pi^{1/2} (-Q) Pi^{-1/2} (a symmetric tridiagonal matrix in 1-D, solved with
    scipy.linalg.eigh_tridiagonal; a sparse symmetric matrix in 2-D, solved with eigsh).
    Returns a float for k = 1, else an array of k values.
    """
    beta = _positive("beta", beta)
    k = _count("k", k, 1)
    fv, axes = _grid_values(f, grid)
    if k >= fv.size:
        raise ValueError(f"k={k} must be smaller than the number of grid points {fv.size}")
    if len(axes) == 1:
        from scipy.linalg import eigh_tridiagonal

        h = axes[0][1] - axes[0][0]
        rate = 1.0 / (beta * h * h)
        diff = np.diff(fv)
        up, down = rate * np.exp(-0.5 * beta * diff), rate * np.exp(0.5 * beta * diff)
        diag = np.zeros(fv.size)
        diag[:-1] += up
        diag[1:] += down
        # symmetrised off-diagonal: -sqrt(Q_ij Q_ji) = -rate for SQRA
        off = -np.sqrt(up * down)
        lam = eigh_tridiagonal(diag, off, select="i", select_range=(1, k), eigvals_only=True)
    else:
        import scipy.sparse as sp
        from scipy.sparse.linalg import eigsh

        q = sqra_generator(f, beta, grid)
        logpi = -beta * (fv.ravel() - fv.min())
        s = sp.diags(np.exp(0.5 * logpi)) @ (-q) @ sp.diags(np.exp(-0.5 * logpi))
        s = 0.5 * (s + s.T)
        shift = 1e-6 * float(abs(s.diagonal()).max())
        lam = np.sort(eigsh(s.tocsc(), k=k + 1, sigma=-shift, which="LM", return_eigenvectors=False))[1:]
    lam = np.asarray(lam, dtype=float)
    return float(lam[0]) if k == 1 else lam


# --------------------------------------------------------------------------------------
# Ornstein-Uhlenbeck and discretisation bias


def ou_stationary_variance(lam, beta: float):
    """Stationary variance 1 / (beta * lam) of dX = -lam X dt + sqrt(2/beta) dW (per eigen-direction)."""
    beta = _positive("beta", beta)
    lam = np.asarray(lam, dtype=float)
    if np.any(~np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError("curvatures lam must be positive (a non-degenerate minimum)")
    return 1.0 / (beta * lam)


def ula_stationary_variance(lam, beta: float, eta: float, noise_scale: float = 0.0):
    """Stationary variance of x <- x - eta (lam x + s xi') + sqrt(2 eta / beta) xi.

    V = (2 eta / beta + eta^2 s^2) / (eta lam (2 - eta lam)), the ULA (s = 0) or SGLD (gradient
    noise of standard deviation s) chain on f = lam x^2 / 2.  Returns inf where eta lam >= 2
    (the chain is unstable and has no stationary law).  ``beta=np.inf`` gives SGD.
    """
    beta = _positive("beta", beta, allow_inf=True)
    eta = _positive("eta", eta)
    if not np.isfinite(noise_scale) or noise_scale < 0:
        raise ValueError("noise_scale must be >= 0")
    lam = np.asarray(lam, dtype=float)
    if np.any(~np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError("curvatures lam must be positive")
    c = eta * lam
    num = 2 * eta / beta + eta**2 * noise_scale**2
    with np.errstate(divide="ignore"):
        return np.where(c < 2, num / (c * (2 - c)), np.inf)


def ula_stationary_covariance(H, beta: float, eta: float, noise_scale: float = 0.0):
    """Stationary covariance of the ULA/SGLD chain on f = x'Hx/2 (discrete Lyapunov equation).

    Solves S = A S A' + (2 eta / beta + eta^2 s^2) I with A = I - eta H; raises ValueError when
    the spectral radius of A is >= 1 (no stationary law).
    """
    from scipy.linalg import solve_discrete_lyapunov

    beta = _positive("beta", beta, allow_inf=True)
    eta = _positive("eta", eta)
    H = np.asarray(H, dtype=float)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or not np.allclose(H, H.T):
        raise ValueError("H must be a symmetric square matrix")
    a = np.eye(len(H)) - eta * H
    if np.max(np.abs(np.linalg.eigvals(a))) >= 1:
        raise ValueError("eta is too large (or H not positive definite): the chain has no stationary law")
    q = (2 * eta / beta + eta**2 * noise_scale**2) * np.eye(len(H))
    return solve_discrete_lyapunov(a, q)


# --------------------------------------------------------------------------------------
# SGLD


def _n_required_args(fn) -> int:
    """Number of required positional parameters of ``fn`` (2 when it cannot be inspected)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


@dataclass
class SGLDResult:
    """Final iterate ``x``, recorded iterates ``path`` (n_saved, *x0.shape) at ``steps_saved``,
    and divergence flags (``diverged`` True when some entry became non-finite, at ``diverged_at``)."""

    x: np.ndarray
    path: np.ndarray
    steps_saved: np.ndarray
    diverged: bool = False
    diverged_at: int = -1


def sgld(loss_grad_minibatch: Callable, x0, lr: float, beta: float, steps: int, seed=0, *,
         record_every: int | None = None) -> SGLDResult:
    """Stochastic gradient Langevin dynamics (Welling & Teh 2011) with a constant step.

    x_{k+1} = x_k - lr * g_k + sqrt(2 lr / beta) * xi_k, where g_k = loss_grad_minibatch(x_k, rng)
    is a stochastic gradient (the function draws its minibatch from the numpy Generator it
    receives; a function of x alone is also accepted) and xi_k ~ N(0, I).  ``beta=np.inf`` is plain SGD.  ``x0`` may hold many
    independent chains (e.g. shape (n_chains, d)) if the gradient function handles them.
    """
    lr = _positive("lr", lr)
    beta = _positive("beta", beta, allow_inf=True)
    steps = _count("steps", steps)
    record_every = steps if record_every is None else _count("record_every", record_every, 1)
    record_every = max(record_every, 1)
    gen = _rng(seed)
    x = np.array(x0, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError("x0 must be finite")
    if not callable(loss_grad_minibatch):
        raise ValueError("loss_grad_minibatch must be a callable (x, rng) -> stochastic gradient")
    if _n_required_args(loss_grad_minibatch) == 1:  # a function of x alone draws its own randomness
        one_arg = loss_grad_minibatch
        loss_grad_minibatch = lambda x, g: one_arg(x)  # noqa: E731
    sigma = 0.0 if math.isinf(beta) else math.sqrt(2 * lr / beta)
    saved = np.arange(0, steps + 1, record_every)
    path = np.full((len(saved), *x.shape), np.nan)
    path[0] = x
    j, div_at = 1, -1
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, steps + 1):
            g = loss_grad_minibatch(x, gen)
            if k == 1:
                g = _check_grad_output(g, x, "loss_grad_minibatch")
            x = x - lr * g
            if sigma > 0:
                x += sigma * gen.standard_normal(x.shape)
            if j < len(saved) and saved[j] == k:
                path[j] = x
                j += 1
            if k % 64 == 0 or k == steps:
                if not np.all(np.isfinite(x)):
                    div_at = k
                    break
    return SGLDResult(x, path, saved, div_at >= 0, div_at)


# a small non-convex regression problem for SGD vs SGLD


@dataclass
class SineRegression:
    """Data for fitting y = sin(w x) with a scalar parameter w (a non-convex least-squares loss)."""

    x: np.ndarray
    y: np.ndarray
    w_true: float
    reg: float = 0.0

    def loss(self, w):
        """L(w) = mean_i (y_i - sin(w x_i))^2 + (reg / 2) w^2 at every entry of ``w``.

        The ridge term makes the loss dissipative: without it L is bounded and exp(-beta L)
        cannot be normalised, so SGLD would wander off to large |w|."""
        w = np.asarray(w, dtype=float)
        r = self.y - np.sin(w[..., None] * self.x)
        return np.mean(r * r, axis=-1) + 0.5 * self.reg * w * w

    def grad(self, w):
        """Exact gradient L'(w) at every entry of ``w``."""
        w = np.asarray(w, dtype=float)
        s = np.sin(w[..., None] * self.x)
        c = np.cos(w[..., None] * self.x)
        return np.mean(-2 * (self.y - s) * c * self.x, axis=-1) + self.reg * w

    def minibatch_grad(self, batch: int):
        """A stochastic gradient for :func:`sgld`: each chain (entry of w) draws its own batch."""
        batch = _count("batch", batch, 1)
        if batch > self.x.size:
            raise ValueError(f"batch={batch} exceeds the {self.x.size} data points")

        def grad(w, gen):
            w = np.asarray(w, dtype=float)
            idx = gen.integers(0, self.x.size, size=(*w.shape, batch))
            xb, yb = self.x[idx], self.y[idx]
            s, c = np.sin(w[..., None] * xb), np.cos(w[..., None] * xb)
            return np.mean(-2 * (yb - s) * c * xb, axis=-1) + self.reg * w

        return grad


def sine_regression(n: int = 64, w_true: float = 2.0, noise: float = 0.1, seed=0, xmax: float = 3.0,
                    reg: float = 0.0) -> SineRegression:
    """n points x ~ U(-xmax, xmax), y = sin(w_true x) + noise * N(0, 1); ``reg`` is the ridge weight."""
    n = _count("n", n, 2)
    if not np.isfinite(reg) or reg < 0:
        raise ValueError("reg must be >= 0")
    gen = _rng(seed)
    x = gen.uniform(-xmax, xmax, n)
    y = np.sin(w_true * x) + noise * gen.standard_normal(n)
    return SineRegression(x, y, float(w_true), float(reg))


def local_minima_1d(values, grid):
    """Indices of strict local minima of sampled values (interior points only)."""
    v = np.asarray(values)
    i = np.flatnonzero((v[1:-1] < v[:-2]) & (v[1:-1] < v[2:])) + 1
    return i


def basin_labels(w, minima, maxima):
    """Which basin (index into ``minima``) each 1-D point lies in, given the separating maxima."""
    maxima = np.sort(np.asarray(maxima, dtype=float))
    return np.searchsorted(maxima, np.asarray(w, dtype=float))


# --------------------------------------------------------------------------------------
# metastability


@dataclass
class Residence:
    """Stays in and transitions between two core sets {x <= -a} and {x >= a} of a 1-D path."""

    stays: np.ndarray        # durations between arrivals in alternating cores
    transitions: np.ndarray  # durations of the reactive pieces (last exit -> first entry)
    switch_times: np.ndarray # times of the arrivals in a new core
    censored: np.ndarray = field(default_factory=lambda: np.array([]))  # unfinished last stays

    @property
    def mean_stay(self) -> float:
        """Mean stay, counting the unfinished last stays (censored-exponential estimate).

        The plain mean of completed stays is biased low in a finite window (long stays are the
        ones that do not finish); adding the censored time to the numerator removes most of it.
        """
        if self.stays.size == 0:
            return float("nan")
        return float((self.stays.sum() + self.censored.sum()) / self.stays.size)


def residence_times(path, dt: float, a: float = 0.5) -> Residence:
    """Split a 1-D trajectory into stays and transitions between cores {x <= -a} and {x >= a}."""
    dt = _positive("dt", dt)
    a = _positive("a", a)
    x = np.asarray(path, dtype=float).ravel()
    lab = np.where(x <= -a, -1, np.where(x >= a, 1, 0))
    idx = np.flatnonzero(lab != 0)
    if idx.size == 0:
        return Residence(np.array([]), np.array([]), np.array([]), np.array([]))
    core = lab[idx]
    change = np.flatnonzero(core[1:] != core[:-1]) + 1  # positions in idx where the core switches
    arrive = idx[change]
    last_in_old = idx[change - 1]
    transitions = (arrive - last_in_old) * dt
    stays = np.diff(arrive) * dt
    censored = np.array([(x.size - 1 - arrive[-1]) * dt]) if arrive.size else np.array([])
    return Residence(stays, transitions, arrive * dt, censored)


# --------------------------------------------------------------------------------------
# plots


def _fig(ncols=1, width=None, height=3.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width or 3.6 * ncols, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def plot_stationary(grid, density, samples, gf_paths, la_paths, dt_rec):
    """Left: a few gradient-flow and Langevin paths; right: histogram of samples vs the Gibbs density."""
    from helpers.plotting import COLORS

    fig, (a1, a2) = _fig(2, width=8.0)
    t = np.arange(la_paths.shape[0]) * dt_rec
    for c in range(la_paths.shape[1]):
        a1.plot(t, la_paths[:, c], color=COLORS["other"], lw=0.6, alpha=0.7, label="Langevin" if c == 0 else None)
    tg = np.arange(gf_paths.shape[0]) * dt_rec
    for c in range(gf_paths.shape[1]):
        a1.plot(tg, gf_paths[:, c], color=COLORS["gd"], lw=1.5, label="gradient flow" if c == 0 else None)
    a1.set_xlabel("time t")
    a1.set_ylabel("$X_t$")
    a1.set_title("same starts, with and without noise")
    a1.legend(loc="lower right")
    a2.hist(np.ravel(samples), bins=60, range=(grid[0], grid[-1]), density=True, color=COLORS["sgd"], alpha=0.6,
            label="Langevin samples")
    a2.plot(grid, density, color=COLORS["theory"], label=r"Gibbs $e^{-\beta f}/Z$")
    a2.set_xlabel("x")
    a2.set_title("law of $X_t$ for $t \\in [10, T]$")
    a2.set_ylim(0, 1.35 * float(np.max(density)))  # room for the legend above the peaks
    a2.legend(loc="upper center", ncols=2, fontsize=8)
    return fig


def plot_escape(betas, simulated, sem, exact, kramers):
    """Mean escape time against beta (log scale): simulation, exact formula, Eyring-Kramers."""
    from helpers.plotting import COLORS

    fig, (ax,) = _fig(1, width=5.0, height=3.3)
    betas = np.asarray(betas)
    ax.errorbar(betas, simulated, yerr=2 * np.asarray(sem), fmt="o", color=COLORS["sgd"], label="simulated (±2 s.e.)")
    ax.plot(betas, exact, "-", color=COLORS["theory"], label="exact 1-D formula")
    ax.plot(betas, kramers, "--", color=COLORS["other"], label="Eyring-Kramers")
    ax.set_yscale("log")
    ax.set_xlabel(r"inverse temperature $\beta$")
    ax.set_ylabel(r"mean escape time $\mathbb{E}\,\tau$")
    ax.legend()
    return fig


def plot_gap(betas, lam1, tau):
    """Spectral gap lambda_1 (log scale) and the product lambda_1 tau / 2 against beta."""
    from helpers.plotting import COLORS

    fig, (a1, a2) = _fig(2, width=8.0)
    a1.semilogy(betas, lam1, "o-", color=COLORS["gd"], label=r"$\lambda_1$ (SQRA)")
    a1.semilogy(betas, 2 / np.asarray(tau), "--", color=COLORS["theory"], label=r"$2/\mathbb{E}\tau$ (exact)")
    a1.set_xlabel(r"$\beta$")
    a1.set_title("the gap closes like $e^{-\\beta \\Delta f}$")
    a1.legend()
    a2.plot(betas, np.asarray(lam1) * np.asarray(tau) / 2, "o-", color=COLORS["gd"])
    a2.axhline(1.0, color=COLORS["theory"], ls=":")
    a2.set_xlabel(r"$\beta$")
    a2.set_title(r"$\lambda_1 \cdot \mathbb{E}\tau / 2$")
    return fig


def plot_ula_bias(etas, measured, formula, continuous, labels):
    """Stationary variance of the discretised chain against the step size, per curvature."""
    fig, (ax,) = _fig(1, width=5.2, height=3.3)
    etas = np.asarray(etas)
    for i, lab in enumerate(labels):
        line, = ax.plot(etas, np.asarray(formula)[:, i], "-", label=f"formula, {lab}")
        ax.plot(etas, np.asarray(measured)[:, i], "o", color=line.get_color())
        ax.axhline(continuous[i], color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel(r"step size $\eta$")
    ax.set_ylabel("stationary variance")
    ax.set_title("dots: simulation; dotted: continuous-time value")
    ax.legend(fontsize=8)
    return fig


def plot_metastable(t, x, res: Residence, a: float):
    """A long 1-D Langevin path with its cores shaded, plus the histogram of stay lengths."""
    from helpers.plotting import COLORS

    fig, (a1, a2) = _fig(2, width=8.5)
    a1.plot(t, x, lw=0.4, color=COLORS["gd"])
    a1.axhspan(a, 2.0, color=COLORS["truth"], alpha=0.1)
    a1.axhspan(-2.0, -a, color=COLORS["other"], alpha=0.1)
    a1.set_ylim(-1.8, 1.8)
    a1.set_xlabel("time t")
    a1.set_ylabel("$X_t$")
    a1.set_title("long stays, quick switches")
    if res.stays.size:
        a2.hist(res.stays, bins=15, color=COLORS["gd"], alpha=0.7, label="stays")
    if res.transitions.size:
        a2.hist(res.transitions, bins=5, color=COLORS["other"], alpha=0.9, label="transitions")
    a2.set_xlabel("duration")
    a2.set_title("durations")
    a2.legend()
    return fig


def plot_sgd_vs_sgld(w_grid, loss, w_sgd, w_sgld, w0):
    """The loss landscape with where SGD and SGLD ended (one marker per seed)."""
    from helpers.plotting import COLORS

    fig, (a1, a2) = _fig(2, width=8.5)
    a1.plot(w_grid, loss, color=COLORS["theory"])
    lo = np.interp(w_sgd, w_grid, loss)
    a1.plot(w_sgd, lo + 0.05, "v", color=COLORS["sgd"], ms=5, alpha=0.6, label="SGD ends")
    a1.plot(w_sgld, np.interp(w_sgld, w_grid, loss) + 0.15, "v", color=COLORS["other"], ms=5, alpha=0.6,
            label="SGLD ends")
    a1.set_xlabel("parameter w")
    a1.set_ylabel("training loss L(w)")
    a1.legend()
    order = np.argsort(w0)
    a2.plot(w0[order], w_sgd[order], "o", ms=3, color=COLORS["sgd"], label="SGD")
    a2.plot(w0[order], w_sgld[order], "o", ms=3, color=COLORS["other"], label="SGLD")
    a2.set_xlabel("initial w")
    a2.set_ylabel("final w")
    a2.legend()
    return fig


# --------------------------------------------------------------------------------------
# widget

#: Grid of the widget's density image.
_WGX = np.linspace(-2.0, 2.0, 81)


@dataclass
class LandscapeRun:
    beta: float
    dt: float
    paths: np.ndarray
    density: np.ndarray
    diverged_at: int
    steps: int
    frac_deepest: float = field(default=float("nan"))


def landscape_run(beta: float, dt: float, n_chains: int = 4, t_end: float = 20.0, seed: int = 0) -> LandscapeRun:
    """Langevin chains on :func:`multi_well` from (1, 1) (the shallowest well) with the Gibbs density."""
    steps = int(round(t_end / dt))
    rec = max(1, steps // 400)
    p = euler_maruyama(multi_well_grad, np.array([1.0, 1.0]), beta, dt, steps, seed=seed, n_chains=n_chains,
                       record_every=rec)
    dens = gibbs_density(multi_well, beta, (_WGX, _WGX))
    div = int(p.diverged_at.max()) if p.diverged.any() else -1
    last = np.asarray(p)[-1]
    frac = float(np.mean((last[:, 0] < 0) & (last[:, 1] < 0))) if div < 0 else float("nan")
    return LandscapeRun(beta, dt, np.asarray(p), dens, div, steps, frac)


def plot_landscape(run: LandscapeRun):
    """The Gibbs density (blue, square-root scale so that shallow wells show) and the chains."""
    from matplotlib.figure import Figure

    from helpers.plotting import message_axes

    # no constrained layout: it doubles the drawing time of a widget frame
    fig = Figure(figsize=(4.2, 3.9))
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.1, top=0.9)
    ax = fig.add_subplot()
    ax.imshow(np.sqrt(run.density.T), origin="lower", extent=(_WGX[0], _WGX[-1], _WGX[0], _WGX[-1]),
              cmap="Blues", aspect="equal")
    if run.diverged_at >= 0:
        message_axes(ax, f"Euler-Maruyama diverged\n(non-finite by step {run.diverged_at}):\n"
                         f"dt = {run.dt:g} is too large")
        ax.set_title(fr"$\beta$={run.beta:g}, dt={run.dt:g}")
        return fig
    for c in range(run.paths.shape[1]):
        ax.plot(run.paths[:, c, 0], run.paths[:, c, 1], lw=0.6, alpha=0.8)
        ax.plot(run.paths[-1, c, 0], run.paths[-1, c, 1], "o", ms=4, color="k")
    ax.plot([1.0], [1.0], "*", color="gold", ms=12, mec="k")
    ax.set_xlim(_WGX[0], _WGX[-1])
    ax.set_ylim(_WGX[0], _WGX[-1])
    ax.set_title(fr"$\beta$={run.beta:g}, dt={run.dt:g}: 4 chains from the star, t $\leq$ 20", fontsize=10)
    ax.grid(False)
    return fig


@widgets.register("ch04-langevin-2d")
def landscape_spec() -> widgets.Spec:
    """Inverse temperature and step size over the 2-D four-well landscape (Gibbs density in grey)."""
    return widgets.Spec(
        compute=landscape_run,
        plot=plot_landscape,
        grid={"beta": [1.0, 2.0, 4.0, 8.0, 16.0], "dt": [0.01, 0.05, 0.1, 0.2, 0.3]},
        default={"beta": 4.0, "dt": 0.05},
        labels={"beta": "β (inverse temperature)", "dt": "step size dt"},
        title="Langevin chains on a four-well landscape",
    )


# --------------------------------------------------------------------------------------
# the chapter's experiments (each returns plain results; the chapter prints and checks them)


@dataclass
class StationaryResult:
    grid: np.ndarray
    density: np.ndarray
    samples: np.ndarray      # Langevin states at t in [t_burn, t_end], shape (n_saved, n_chains)
    mean_f: float
    mean_x2: float
    exact_f: float
    exact_x2: float
    l1: float
    gf_same_basin: float     # fraction of gradient-flow runs ending in the basin they started in
    la_switched: float       # fraction of Langevin chains whose sign changed at least once
    show_gf: np.ndarray
    show_la: np.ndarray
    dt_rec: float


def stationary_experiment(beta=3.0, dt=1e-3, n_chains=2000, t_burn=10.0, t_end=60.0, seed=0,
                          rec_time=0.1) -> StationaryResult:
    """Experiment 1: Langevin chains on the double well reach the Gibbs law; gradient flow does not move basins.

    Chains start uniformly in [-2, 2]; states are recorded every ``rec_time`` for t in
    [t_burn, t_end] and compared with quadrature values of E f and E x^2 and with the density.
    """
    gen = _rng(seed)
    x0 = gen.uniform(-2.0, 2.0, (n_chains, 1))
    every = max(1, int(round(rec_time / dt)))
    steps = int(round(t_end / dt))
    # one run records everything at rec_time; the burn-in part is only used for the picture
    p = np.asarray(euler_maruyama(double_well_grad, x0, beta, dt, steps, seed=gen, n_chains=n_chains,
                                  record_every=every))[:, :, 0]
    t = np.arange(p.shape[0]) * every * dt
    samples = p[t >= t_burn - 1e-9]
    # gradient flow on the same time grid; step 0.01 is stable here (eta * f'' <= 0.44 for |x| <= 2)
    gf_dt = rec_time / 10
    gf = np.asarray(gradient_flow(double_well_grad, x0[:, 0], gf_dt, int(round(t_end / gf_dt)), record_every=10))
    grid = np.linspace(-2.5, 2.5, 1001)
    dens = gibbs_density(double_well, beta, grid)
    switched = np.any(np.sign(p) != np.sign(x0[:, 0]), axis=0)
    show = np.argsort(x0[:, 0])[np.linspace(0, n_chains - 1, 4).astype(int)]
    return StationaryResult(
        grid, dens, samples,
        float(np.mean(double_well(samples))), float(np.mean(samples**2)),
        gibbs_expectation(double_well, beta, double_well, -3, 3), gibbs_expectation(double_well, beta, np.square, -3, 3),
        histogram_l1(samples, dens, grid),
        float(np.mean(np.sign(gf[-1]) == np.sign(x0[:, 0]))), float(np.mean(switched)),
        gf[:, show], p[:, show[:2]], every * dt)


@dataclass
class EscapeTable:
    betas: np.ndarray
    simulated: np.ndarray
    sem: np.ndarray
    exact: np.ndarray
    kramers: np.ndarray
    slope_sim: float
    slope_exact: float


def escape_experiment(betas=(2.0, 3.0, 4.0, 5.0), dt=5e-3, n_chains=400, seed=0) -> EscapeTable:
    """Experiment 2: escape times -1 -> +1 on the double well, simulation vs exact formula vs Eyring-Kramers."""
    betas = np.asarray(betas, dtype=float)
    sims = [mean_escape_time(double_well_grad, -1.0, b, dt, 1.0, n_chains, seed=seed + i) for i, b in enumerate(betas)]
    sim = np.array([r.mean for r in sims])
    sem = np.array([r.sem for r in sims])
    exact = np.array([exact_escape_time(double_well, b, -1.0, 1.0) for b in betas])
    ek = np.array([eyring_kramers(8.0, -4.0, 1.0, b) for b in betas])
    return EscapeTable(betas, sim, sem, exact, ek, float(np.polyfit(betas, np.log(sim), 1)[0]),
                       float(np.polyfit(betas, np.log(exact), 1)[0]))


@dataclass
class ULAResult:
    etas: np.ndarray
    lams: np.ndarray
    noise_scales: tuple
    measured: dict           # noise_scale -> (n_eta, n_lam) measured variances
    formula: dict            # noise_scale -> (n_eta, n_lam) formula
    continuous: np.ndarray   # 1 / (beta lam)
    mean_f: dict             # noise_scale -> (n_eta,) measured E f
    beta: float


def ula_experiment(lams=(1.0, 4.0), beta=2.0, etas=(0.02, 0.05, 0.1, 0.2, 0.3, 0.4), noise_scales=(0.0, 1.0),
                   n_chains=1000, n_records=100, seed=0) -> ULAResult:
    """Experiment 4: stationary variance of ULA/SGLD on f = x'Hx/2 (H with eigenvalues ``lams``, rotated)."""
    gen = _rng(seed)
    lams = np.asarray(lams, dtype=float)
    q, _ = np.linalg.qr(gen.standard_normal((len(lams), len(lams))))
    H = q @ np.diag(lams) @ q.T
    measured, formula, mean_f = {}, {}, {}
    for s in noise_scales:
        rows, fs = [], []
        for eta in etas:
            burn = int(8 / (eta * lams.min())) + 1
            every = max(1, int(0.5 / (eta * lams.min())))

            def grad(x, g, s=s):
                return x @ H + (s * g.standard_normal(x.shape) if s > 0 else 0.0)

            r = sgld(grad, np.zeros((n_chains, len(lams))), eta, beta, burn + every * n_records, seed=gen,
                     record_every=every)
            z = r.path[r.steps_saved >= burn]
            rows.append((z @ q).reshape(-1, len(lams)).var(axis=0))
            fs.append(float(np.mean(0.5 * np.einsum("...i,ij,...j->...", z, H, z))))
        measured[s] = np.array(rows)
        formula[s] = np.array([ula_stationary_variance(lams, beta, eta, s) for eta in etas])
        mean_f[s] = np.array(fs)
    return ULAResult(np.asarray(etas), lams, tuple(noise_scales), measured, formula,
                     ou_stationary_variance(lams, beta), mean_f, beta)


@dataclass
class MetastableResult:
    t: np.ndarray
    x: np.ndarray
    res: Residence
    a: float
    exact_stay: float
    beta: float


def metastable_experiment(beta=3.0, dt=5e-3, t_end=400.0, n_chains=8, a=0.5, seed=0) -> MetastableResult:
    """Experiment 5a: long double-well paths; stays between the cores vs the exact mean passage time.

    ``x`` is the first chain's path (for the picture); ``res`` pools the stays and transitions
    of all chains."""
    steps = int(round(t_end / dt))
    p = np.asarray(euler_maruyama(double_well_grad, -1.0, beta, dt, steps, seed=seed, n_chains=n_chains))[:, :, 0]
    parts = [residence_times(p[:, c], dt, a) for c in range(n_chains)]
    res = Residence(*(np.concatenate([getattr(r, k) for r in parts])
                      for k in ("stays", "transitions", "switch_times", "censored")))
    t = np.arange(steps + 1) * dt
    return MetastableResult(t, p[:, 0], res, a, exact_escape_time(double_well, beta, a, -a), beta)


@dataclass
class BasinResult:
    problem: SineRegression
    w_grid: np.ndarray
    loss: np.ndarray
    w0: np.ndarray
    w_sgd: np.ndarray
    w_sgld: dict             # beta -> final parameters
    frac_init: float         # fraction of starts inside the global minimum's basin of attraction
    frac_sgd: float
    frac_sgld: dict          # beta -> fraction of SGLD runs ending in the global basin
    gibbs_mass: dict         # beta -> Gibbs mass of the global basin
    w_global: float
    w_local: float
    t_end: float
    barrier: float = float("nan")  # loss at the ridge between the two minima minus loss at the local one


def basin_experiment(betas=(4.0, 8.0), lr=0.02, steps=10000, n_seeds=64, batch=8, reg=0.1, seed=0) -> BasinResult:
    """Experiment 5b: SGD vs SGLD on the (ridge-regularised) sine regression: which basin each run ends in."""
    prob = sine_regression(64, 2.0, 0.1, seed=seed, reg=reg)
    w = np.linspace(-5.0, 6.0, 4401)
    loss = prob.loss(w)
    mins, maxs = local_minima_1d(loss, w), local_minima_1d(-loss, w)
    glob = int(np.argmin(loss[mins]))
    lab = lambda v: basin_labels(v, w[mins], w[maxs])  # noqa: E731
    w0 = _rng(seed + 1).uniform(-1.2, 3.2, n_seeds)
    g = prob.minibatch_grad(batch)
    sgd_run = sgld(g, w0, lr, np.inf, steps // 5, seed=seed + 2)
    w_sgld, frac, mass = {}, {}, {}
    for b in betas:
        r = sgld(g, w0, lr, b, steps, seed=seed + 3)
        w_sgld[b] = r.x
        frac[b] = float(np.mean(lab(r.x) == glob))
        dens = gibbs_density(prob.loss, b, w)
        mass[b] = float(_trapz(dens * (lab(w) == glob), w))
    others = [i for i in range(len(mins)) if i != glob]
    local = others[int(np.argmin(loss[mins][others]))] if others else glob
    lo, hi = sorted((w[mins][local], w[mins][glob]))
    ridge = float(loss[(w >= lo) & (w <= hi)].max())
    return BasinResult(prob, w, loss, w0, sgd_run.x, w_sgld, float(np.mean(lab(w0) == glob)),
                       float(np.mean(lab(sgd_run.x) == glob)), frac, mass, float(w[mins][glob]),
                       float(w[mins][local]), steps * lr, ridge - float(loss[mins][local]))
