"""Optimization landscapes: saddle points, symmetry and spurious minima (chapter 2, Rong Ge's talk).

Compute functions are pure and return arrays or dataclasses; ``plot_*`` functions take their
results and return a matplotlib Figure. torch is imported only inside the teacher-student
functions, which need batched float64 tensors.

Papers behind the functions:

- the quartic ``l2l4`` toy landscape and the saddle-escape experiments: Ge, Huang, Jin & Yuan
  (2015), Jin, Ge, Netrapalli, Kakade & Jordan (2017, perturbed gradient descent);
- matrix factorization and completion: Ge, Lee & Ma (2016), Ge, Jin & Zheng (2017);
- teacher-student ReLU networks with Gaussian inputs: Safran & Shamir (2018), with the
  closed-form Gaussian kernel of Cho & Saul (2009);
- overcomplete tensors: Ge & Ma (2017), the conjecture in Ge's talk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product

import numpy as np

from helpers import repro, widgets

__all__ = [
    "l2l4", "l2l4_grad", "l2l4_hessian", "critical_points_l2l4", "critical_point_census",
    "classify", "gd", "perturbed_gd", "escape_steps", "predicted_escape_steps",
    "scalar_linear_net_hessian",
    "random_psd", "matrix_factorization_gd", "matrix_completion_gd", "completion_instance",
    "completion_hessian", "completion_sweep", "inspect_completion_failures",
    "relu_kernel", "teacher_student_loss", "teacher_student_grad", "teacher_student_relu",
    "teacher_student_hessian", "stable_lr", "spurious_minima_table", "SpuriousTable", "batched_speedup",
    "BatchedSpeedup",
    "tensor_power_ascent", "tensor_overlap_sweep", "tensor_exceptions", "tensor_riemannian_hessian_max",
]


# ---------------------------------------------------------------------------------------------
# small validation helpers

def _as_float_array(x, name: str, min_ndim: int = 1) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array, got {type(x).__name__}") from None
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# the l2-l4 function: f(x) = -||x||_2^2 + ||x||_4^4

def l2l4(x):
    """f(x) = -||x||_2^2 + ||x||_4^4 over the last axis (a batch of points gives a batch of values).

    The toy landscape of Ge's talk (and of ICA-style objectives): 2^d symmetric minima at
    x in {+-1/sqrt2}^d, a maximum at 0, saddles in between.
    """
    x = _as_float_array(x, "x")
    return -np.sum(x**2, axis=-1) + np.sum(x**4, axis=-1)


def l2l4_grad(x):
    """Gradient of :func:`l2l4`: -2x + 4x^3 coordinatewise (same shape as ``x``)."""
    x = _as_float_array(x, "x")
    return -2.0 * x + 4.0 * x**3


def l2l4_hessian(x):
    """Hessian of :func:`l2l4`: diag(-2 + 12 x_i^2); shape ``x.shape + (d,)``."""
    x = _as_float_array(x, "x")
    diag = -2.0 + 12.0 * x**2
    return diag[..., :, None] * np.eye(x.shape[-1])


def critical_points_l2l4(d: int) -> np.ndarray:
    """Every critical point of :func:`l2l4` in R^d, exactly: the 3^d points with coordinates in
    {0, +1/sqrt2, -1/sqrt2} (the gradient -2x_i + 4x_i^3 vanishes coordinatewise exactly there).

    Returns an array of shape (3^d, d). ``d`` is limited to 12 (531441 points).
    """
    d = _count(d, "d")
    if d > 12:
        raise ValueError(f"d={d} gives 3^d critical points; use d <= 12")
    c = 1.0 / math.sqrt(2.0)
    return np.array(list(product((0.0, c, -c), repeat=d)), dtype=float).reshape(3**d, d)


def classify(hessian, tol: float = 1e-8):
    """Classify a critical point from its Hessian: ("min" | "saddle" | "max" | "degenerate", index).

    ``index`` is the number of eigenvalues below ``-tol``. A Hessian with eigenvalues of both
    signs is a (strict) saddle whatever else it has; otherwise an eigenvalue within ``tol`` of 0
    makes the second-order test inconclusive ("degenerate": a higher-order saddle, or a
    minimum or maximum that only higher derivatives reveal).
    """
    H = _as_float_array(hessian, "hessian", min_ndim=2)
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"hessian must be a square matrix, got shape {H.shape}")
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        raise ValueError(f"tol must be a number >= 0, got {tol!r}") from None
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    scale = max(1.0, float(np.max(np.abs(H))))
    if not np.allclose(H, H.T, rtol=0, atol=1e-8 * scale):
        raise ValueError("hessian must be symmetric; symmetrize it with (H + H.T) / 2 first")
    eig = np.linalg.eigvalsh((H + H.T) / 2)
    neg = int(np.sum(eig < -tol))
    pos = int(np.sum(eig > tol))
    zero = eig.size - neg - pos
    if neg and pos:
        return "saddle", neg
    if zero:
        return "degenerate", neg
    return ("min", 0) if neg == 0 else ("max", neg)


@dataclass
class Census:
    """Critical points of l2l4 grouped by the number j of negative Hessian eigenvalues."""

    d: int
    counts: dict          # j -> number of critical points with index j
    values: dict          # j -> set of function values (rounded to 12 digits)
    labels: dict          # label -> count
    predicted_counts: dict  # j -> C(d, j) 2^(d-j)


def critical_point_census(d: int, tol: float = 1e-8) -> Census:
    """Enumerate the critical points of l2l4, classify each with :func:`classify`, and count."""
    pts = critical_points_l2l4(d)
    H = l2l4_hessian(pts)
    vals = l2l4(pts)
    counts: dict = {}
    values: dict = {}
    labels: dict = {}
    for h, v in zip(H, vals):
        label, j = classify(h, tol)
        counts[j] = counts.get(j, 0) + 1
        values.setdefault(j, set()).add(round(float(v), 12))
        labels[label] = labels.get(label, 0) + 1
    predicted = {j: math.comb(d, j) * 2 ** (d - j) for j in range(d + 1)}
    return Census(d, dict(sorted(counts.items())), values, labels, predicted)


# ---------------------------------------------------------------------------------------------
# gradient descent and perturbed gradient descent

@dataclass
class GDResult:
    """What (perturbed) gradient descent did: the path, the last point, divergence."""

    path: np.ndarray | None   # (steps_run + 1, *x0.shape) when kept
    x: np.ndarray             # last finite iterate
    steps_run: int
    diverged: bool = False
    diverged_at: int | None = None
    perturbed_at: list = field(default_factory=list)   # steps at which a perturbation was added
    perturbations: list = field(default_factory=list)  # the perturbation vectors


def _check_step(lr, steps):
    lr = _positive(lr, "lr")
    steps = _count(steps, "steps", minimum=0)
    return lr, steps


def _call_grad(grad, x):
    g = np.asarray(grad(x), dtype=float)
    if g.shape != x.shape:
        raise ValueError(f"grad(x) returned shape {g.shape}, expected the shape of x, {x.shape}")
    return g


def gd(grad, x0, lr: float, steps: int, keep_path: bool = True) -> GDResult:
    """Plain gradient descent x <- x - lr * grad(x) for ``steps`` steps.

    ``x0`` may be one point (d,) or a batch (..., d) if ``grad`` acts on batches (as
    :func:`l2l4_grad` does). A non-finite iterate stops the run and is reported as
    ``diverged`` (the path ends at the last finite iterate).
    """
    if not callable(grad):
        raise ValueError("grad must be a callable returning the gradient at x")
    x = _as_float_array(x0, "x0").copy()
    lr, steps = _check_step(lr, steps)
    path = [x.copy()] if keep_path else None
    for t in range(steps):
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked just below
            new = x - lr * _call_grad(grad, x)
        if not np.all(np.isfinite(new)):
            return GDResult(np.array(path) if keep_path else None, x, t, True, t + 1)
        x = new
        if keep_path:
            path.append(x.copy())
    return GDResult(np.array(path) if keep_path else None, x, steps)


def _uniform_ball(rng: np.random.Generator, d: int, radius: float) -> np.ndarray:
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    return v * radius * rng.random() ** (1.0 / d)


def perturbed_gd(grad, hess_or_none, x0, lr: float, steps: int, radius: float, seed: int = 0,
                 g_thres: float = 1e-3, t_thres: int = 50, neg_thres: float = 1e-6,
                 max_perturbations: int | None = None, keep_path: bool = True) -> GDResult:
    """Perturbed gradient descent (Jin, Ge, Netrapalli, Kakade & Jordan 2017), simplified.

    Gradient descent, except that when ``||grad(x)|| <= g_thres`` and no perturbation was added
    in the last ``t_thres`` steps, a point drawn uniformly from the ball of radius ``radius``
    is added to x before the step. If ``hess_or_none`` is a callable, the perturbation is only
    added where the Hessian has an eigenvalue below ``-neg_thres`` (a saddle, not a minimum);
    with ``None`` the algorithm is first-order, as in the paper. ``x0`` is a single point (d,).
    """
    if not callable(grad):
        raise ValueError("grad must be a callable returning the gradient at x")
    if hess_or_none is not None and not callable(hess_or_none):
        raise ValueError("hess_or_none must be a callable returning the Hessian, or None")
    x = _as_float_array(x0, "x0").copy()
    if x.ndim != 1:
        raise ValueError(f"perturbed_gd runs one point at a time: x0 must have shape (d,), got {x.shape}")
    lr, steps = _check_step(lr, steps)
    radius = _positive(radius, "radius")
    g_thres = _positive(g_thres, "g_thres")
    t_thres = _count(t_thres, "t_thres", minimum=0)
    if max_perturbations is not None:
        max_perturbations = _count(max_perturbations, "max_perturbations", minimum=0)
    rng = repro.rng(seed)
    path = [x.copy()] if keep_path else None
    result = GDResult(None, x, steps)
    last = -10**18
    for t in range(steps):
        g = _call_grad(grad, x)
        budget_ok = max_perturbations is None or len(result.perturbed_at) < max_perturbations
        if budget_ok and np.linalg.norm(g) <= g_thres and t - last > t_thres:
            at_saddle = True
            if hess_or_none is not None:
                H = np.asarray(hess_or_none(x), dtype=float)
                at_saddle = bool(np.linalg.eigvalsh((H + H.T) / 2)[0] < -neg_thres)
            if at_saddle:
                xi = _uniform_ball(rng, x.size, radius)
                result.perturbed_at.append(t)
                result.perturbations.append(xi)
                x = x + xi
                g = _call_grad(grad, x)
                last = t
        new = x - lr * g
        if not np.all(np.isfinite(new)):
            result.diverged, result.diverged_at, result.steps_run = True, t + 1, t
            break
        x = new
        if keep_path:
            path.append(x.copy())
    result.x = x
    result.path = np.array(path) if keep_path else None
    return result


def escape_steps(path, center, radius: float, start: int = 0) -> int | None:
    """Steps after ``start`` until the path first lies at distance >= ``radius`` from ``center``
    (None if it never does)."""
    path = _as_float_array(path, "path", min_ndim=2)
    center = _as_float_array(center, "center")
    if center.shape != path.shape[1:]:
        raise ValueError(f"center has shape {center.shape}, the path's points have shape {path.shape[1:]}")
    radius = _positive(radius, "radius")
    start = _count(start, "start", minimum=0)
    dist = np.linalg.norm((path[start:] - center).reshape(len(path) - start, -1), axis=1)
    hits = np.nonzero(dist >= radius)[0]
    return int(hits[0]) if hits.size else None


def predicted_escape_steps(lam: float, lr: float, r0: float, radius: float) -> float:
    """Steps for GD near a saddle to grow a displacement r0 to ``radius`` along a direction of
    curvature -lam (lam > 0): the linearized map multiplies it by (1 + lr*lam) per step, so
    t = ln(radius / r0) / ln(1 + lr * lam)."""
    lam, lr, r0, radius = (_positive(v, n) for v, n in ((lam, "lam"), (lr, "lr"), (r0, "r0"), (radius, "radius")))
    return math.log(radius / r0) / math.log1p(lr * lam)


def scalar_linear_net_hessian(w, target: float = 1.0) -> np.ndarray:
    """Hessian of the depth-L scalar linear network loss 1/2 (w_1 w_2 ... w_L - target)^2 at w.

    At w = 0 it is [[0, -target], [-target, 0]] for L = 2 (a strict saddle) and the zero
    matrix for L >= 3 (a higher-order saddle): Kawaguchi (2016)'s observation in one dimension.
    """
    w = _as_float_array(w, "w")
    if w.ndim != 1:
        raise ValueError(f"w must be a vector of layer weights, got shape {w.shape}")
    L = w.size
    # products of all weights but i (and but i, j) without dividing by w_i (w may contain zeros)
    def prod_except(idx):
        return float(np.prod(np.delete(w, list(idx)))) if L > len(set(idx)) else 1.0
    p = float(np.prod(w))
    H = np.empty((L, L))
    for i in range(L):
        for j in range(L):
            gi, gj = prod_except((i,)), prod_except((j,))
            cross = prod_except((i, j)) if i != j else 0.0
            H[i, j] = gi * gj + (p - target) * cross
    return H


# ---------------------------------------------------------------------------------------------
# matrix factorization and matrix completion (Ge, Lee & Ma 2016; Ge, Jin & Zheng 2017)

def random_psd(d: int, rank: int, seed: int = 0, spectrum=None) -> np.ndarray:
    """A random d x d PSD matrix Q diag(spectrum) Q^T of the given rank (Q Haar-orthonormal).

    ``spectrum`` defaults to all ones (sigma_1 = ... = sigma_r = 1)."""
    d, rank = _count(d, "d"), _count(rank, "rank")
    if rank > d:
        raise ValueError(f"rank={rank} cannot exceed d={d}")
    rng = repro.rng(seed)
    Q, R = np.linalg.qr(rng.standard_normal((d, rank)))
    Q = Q * np.sign(np.diag(R))
    s = np.ones(rank) if spectrum is None else _as_float_array(spectrum, "spectrum")
    if s.shape != (rank,) or np.any(s <= 0):
        raise ValueError(f"spectrum must hold {rank} positive numbers")
    return (Q * s) @ Q.T


@dataclass
class FactorResult:
    """Result of gradient descent on a factorized objective."""

    X: np.ndarray                 # final factor(s): (d, r) or (B, d, r)
    losses: np.ndarray            # objective after each step: (steps + 1,) or (steps + 1, B)
    rel_error: np.ndarray | float  # ||X X^T - M||_F / ||M||_F at the end (per batch member)
    diverged: bool | np.ndarray = False
    steps_run: int = 0
    obs_loss: np.ndarray | float | None = None  # completion only: the loss on observed entries


def _check_symmetric(M, name):
    M = _as_float_array(M, name, min_ndim=2)
    if M.shape[-1] != M.shape[-2]:
        raise ValueError(f"{name} must be square, got shape {M.shape}")
    scale = max(1.0, float(np.max(np.abs(M))))
    if not np.allclose(M, np.swapaxes(M, -1, -2), rtol=0, atol=1e-10 * scale):
        raise ValueError(f"{name} must be symmetric (this is the symmetric X X^T problem)")
    return M


def matrix_factorization_gd(M, rank: int, lr: float, steps: int, seed: int = 0,
                            init_scale: float | None = None) -> FactorResult:
    """Gradient descent on f(X) = 1/4 ||X X^T - M||_F^2 over X in R^{d x rank} from a Gaussian
    start N(0, init_scale^2) (default init_scale = 1/sqrt(d)); the gradient is (X X^T - M) X.

    For symmetric M every local minimum is global (Ge, Jin & Zheng 2017): X X^T is then the best
    PSD rank-``rank`` approximation of M. Divergence is reported in ``diverged``.
    """
    M = _check_symmetric(M, "M")
    if M.ndim != 2:
        raise ValueError(f"M must be one d x d matrix, got shape {M.shape}")
    d = M.shape[0]
    rank = _count(rank, "rank")
    if rank > d:
        raise ValueError(f"rank={rank} cannot exceed d={d}")
    lr, steps = _check_step(lr, steps)
    init_scale = 1.0 / math.sqrt(d) if init_scale is None else _positive(init_scale, "init_scale")
    X = repro.rng(seed).standard_normal((d, rank)) * init_scale
    losses = np.empty(steps + 1)
    R = X @ X.T - M
    losses[0] = 0.25 * np.sum(R**2)
    diverged, t = False, 0
    for t in range(1, steps + 1):
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked just below
            Xn = X - lr * (R @ X)
            Rn = Xn @ Xn.T - M
            loss = 0.25 * np.sum(Rn**2)
        if not (np.all(np.isfinite(Xn)) and math.isfinite(loss)):
            diverged, t = True, t - 1
            break
        X, R, losses[t] = Xn, Rn, loss
    else:
        t = steps
    nM = np.linalg.norm(M)
    rel = float(np.linalg.norm(X @ X.T - M) / (nM if nM > 0 else 1.0))
    return FactorResult(X, losses[: t + 1], rel, diverged, t)


def completion_instance(d: int, rank: int, p: float, seed: int = 0, spectrum=None):
    """A symmetric matrix completion instance: M = random_psd(d, rank) and a symmetric Bernoulli(p)
    mask (each pair {i, j}, i <= j, observed independently with probability p).

    Returns (M, mask) with mask boolean."""
    p = _positive(p, "p")
    if p > 1:
        raise ValueError(f"p is a probability, got {p}")
    rng = repro.rng(seed)
    M = random_psd(d, rank, rng, spectrum)
    up = np.triu(rng.random((d, d)) < p)
    return M, up | up.T


def _check_completion(M_obs, mask, rank):
    M_obs = _check_symmetric(M_obs, "M_obs")
    mask = np.asarray(mask)
    if mask.shape != M_obs.shape:
        raise ValueError(f"mask has shape {mask.shape}, M_obs has shape {M_obs.shape}; they must match")
    if mask.dtype != bool:
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError("mask must be boolean (or 0/1)")
        mask = mask.astype(bool)
    if not np.array_equal(mask, np.swapaxes(mask, -1, -2)):
        raise ValueError("mask must be symmetric: observe (i, j) and (j, i) together")
    if not mask.any():
        raise ValueError("mask observes no entry")
    d = M_obs.shape[-1]
    rank = _count(rank, "rank")
    if rank > d:
        raise ValueError(f"rank={rank} cannot exceed d={d}")
    return M_obs * mask, mask, rank


def matrix_completion_gd(M_obs, mask, rank: int, lr: float, steps: int, seed: int = 0,
                         reg: float = 0.0, alpha: float | None = None, p: float | None = None,
                         init_scale: float | None = None, M_true=None) -> FactorResult:
    """Gradient descent on the matrix completion objective of Ge, Lee & Ma (2016):

        f(U) = 1/(2p) ||P_Omega(U U^T - M)||_F^2 + reg * sum_i (||U_i|| - alpha)_+^4,

    U in R^{d x rank}, P_Omega keeps the entries where ``mask`` is True, p = the fraction of
    observed entries unless given, U_i the rows (the regularizer keeps rows incoherent;
    alpha defaults to 2 * sqrt(rank / d)). Start: N(0, init_scale^2) with init_scale = 1/sqrt(d).

    ``M_obs`` and ``mask`` may carry a leading batch axis (B, d, d): the B problems then run
    together, each from its own start drawn from ``seed``. Entries of M_obs outside the mask
    are ignored. ``rel_error`` needs ``M_true`` (the full matrix); else it is NaN.
    """
    Mo, mask, rank = _check_completion(M_obs, mask, rank)
    lr, steps = _check_step(lr, steps)
    reg = float(reg)
    if not math.isfinite(reg) or reg < 0:
        raise ValueError(f"reg must be >= 0, got {reg}")
    batched = Mo.ndim == 3
    if Mo.ndim not in (2, 3):
        raise ValueError(f"M_obs must have shape (d, d) or (B, d, d), got {Mo.shape}")
    d = Mo.shape[-1]
    p = float(mask.mean()) if p is None else _positive(p, "p")
    alpha = 2.0 * math.sqrt(rank / d) if alpha is None else _positive(alpha, "alpha")
    init_scale = 1.0 / math.sqrt(d) if init_scale is None else _positive(init_scale, "init_scale")
    Mb, Wb = (Mo, mask) if batched else (Mo[None], mask[None])
    B = Mb.shape[0]
    W = Wb.astype(float)
    U = repro.rng(seed).standard_normal((B, d, rank)) * init_scale

    def loss_grad(U):
        S = U @ np.swapaxes(U, 1, 2)
        S *= W  # in place: this loop is memory-bound, each temporary d x d array costs time
        S -= Mb
        loss = np.einsum("bij,bij->b", S, S) / (2 * p)
        G = S @ U
        G *= 2.0 / p  # S is symmetric: d/dU of 1/(2p)||S||^2 is (S + S^T) U / p
        if reg > 0:
            norms = np.linalg.norm(U, axis=2, keepdims=True)
            excess = np.maximum(norms - alpha, 0.0)
            loss = loss + reg * np.sum(excess**4, axis=(1, 2))
            G = G + reg * 4 * excess**3 * U / np.maximum(norms, 1e-300)
        return loss, G

    losses = np.empty((steps + 1, B))
    loss, G = loss_grad(U)
    losses[0] = loss
    diverged = np.zeros(B, dtype=bool)
    t = 0
    for t in range(1, steps + 1):
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked just below
            Un = U - lr * G
            ln, Gn = loss_grad(Un)
        bad = ~(np.isfinite(ln) & np.all(np.isfinite(Un), axis=(1, 2)))
        if bad.any():
            # freeze the diverged members at their last finite iterate
            diverged |= bad
            Un[bad], ln[bad], Gn[bad] = U[bad], losses[t - 1][bad], 0.0
        U, loss, G = Un, ln, Gn
        losses[t] = loss
        if diverged.all():
            break
    obs = np.sum((W * (U @ np.swapaxes(U, 1, 2)) - Mb) ** 2, axis=(1, 2)) / (2 * p)
    if M_true is not None:
        Mt = _check_symmetric(M_true, "M_true")
        if Mt.shape != Mo.shape:
            raise ValueError(f"M_true has shape {Mt.shape}, expected {Mo.shape}")
        Mt = Mt if batched else Mt[None]
        rel = np.linalg.norm(U @ np.swapaxes(U, 1, 2) - Mt, axis=(1, 2)) / np.linalg.norm(Mt, axis=(1, 2))
    else:
        rel = np.full(B, np.nan)
    if not batched:
        return FactorResult(U[0], losses[: t + 1, 0], float(rel[0]), bool(diverged[0]), t, float(obs[0]))
    return FactorResult(U, losses[: t + 1], rel, diverged, t, obs)


def completion_hessian(U, M_obs, mask, p: float | None = None) -> np.ndarray:
    """The (d r) x (d r) Hessian of f(U) = 1/(2p) ||P_Omega(U U^T - M)||_F^2 at U (no regularizer),
    in the row-major ordering of U.ravel().

    Its quadratic form is (1/p) [ ||P_Omega(U V^T + V U^T)||^2 + 2 <P_Omega(U U^T - M), V V^T> ].
    Three zero eigenvalues-worth (r(r-1)/2) come from the rotation symmetry U -> U R.
    """
    Mo, mask, _ = _check_completion(M_obs, mask, 1)
    if Mo.ndim != 2:
        raise ValueError("completion_hessian takes one problem (d x d), not a batch")
    U = _as_float_array(U, "U", min_ndim=2)
    d = Mo.shape[0]
    if U.ndim != 2 or U.shape[0] != d:
        raise ValueError(f"U must have shape ({d}, r), got {U.shape}")
    r = U.shape[1]
    p = float(mask.mean()) if p is None else _positive(p, "p")
    W = mask.astype(float)
    S = W * (U @ U.T - Mo)
    n = d * r
    E = np.eye(n).reshape(n, d, r)               # every basis direction V
    UVt = U[None] @ np.swapaxes(E, 1, 2)          # (n, d, d): U V^T
    D = W[None] * (UVt + np.swapaxes(UVt, 1, 2))  # P_Omega(U V^T + V U^T)
    # derivative of the gradient (2/p) S U along V: (2/p) [ P(UV^T + VU^T) U + S V ]
    HV = (2.0 / p) * (D @ U[None] + S[None] @ E)
    H = HV.reshape(n, n)
    return (H + H.T) / 2


@dataclass
class CompletionSweep:
    """Success counts of matrix completion GD over sampling rates p (one row per p)."""

    ps: np.ndarray
    seeds: list
    rel_error: np.ndarray   # (len(ps), len(seeds))
    obs_loss: np.ndarray    # (len(ps), len(seeds)) loss on the observed entries
    grad_norm: np.ndarray   # (len(ps), len(seeds))
    success_tol: float
    d: int
    rank: int
    steps: int
    lr: float
    X: np.ndarray | None = None  # (len(ps), len(seeds), d, rank) final factors

    def instance(self, a: int, b: int):
        """(M, mask) of run (ps[a], seeds[b]), regenerated from its seed."""
        return completion_instance(self.d, self.rank, float(self.ps[a]), seed=1000 * self.seeds[b] + 17,
                                   spectrum=self.spectrum)

    spectrum: object = None

    @property
    def successes(self) -> np.ndarray:
        return np.sum(self.rel_error < self.success_tol, axis=1)


def completion_sweep(d: int, rank: int, ps, seeds, lr: float = 0.05, steps: int = 4000,
                     success_tol: float = 1e-6, spectrum=None) -> CompletionSweep:
    """For each p and seed: a fresh instance (:func:`completion_instance`) and GD from N(0, 1/d);
    the seeds of one p run batched. Success: ||U U^T - M||_F / ||M||_F < success_tol."""
    ps = _as_float_array(ps, "ps")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty")
    rel = np.empty((ps.size, len(seeds)))
    obs = np.empty_like(rel)
    gn = np.empty_like(rel)
    Xs = np.empty((ps.size, len(seeds), d, rank))
    for a, p in enumerate(ps):
        inst = [completion_instance(d, rank, p, seed=1000 * s + 17, spectrum=spectrum) for s in seeds]
        M = np.stack([m for m, _ in inst])
        mask = np.stack([w for _, w in inst])
        res = matrix_completion_gd(M * mask, mask, rank, lr, steps, seed=seeds[0] + 7919 * a,
                                   p=float(p), M_true=M)
        rel[a], obs[a], Xs[a] = res.rel_error, res.obs_loss, res.X
        S = mask * (res.X @ np.swapaxes(res.X, 1, 2)) - M * mask
        gn[a] = np.linalg.norm((2.0 / p) * (S @ res.X), axis=(1, 2))
    return CompletionSweep(ps, seeds, rel, obs, gn, success_tol, d, rank, steps, lr, Xs, spectrum)


@dataclass
class CompletionFailure:
    """One failed completion run, inspected: is it a spurious local minimum?"""

    p: float
    seed: int
    n_observed: int        # distinct observed entries (i <= j)
    obs_loss: float        # loss on the observed entries at the end
    grad_norm: float
    min_hess_eig: float    # smallest Hessian eigenvalue (NaN when not computed)
    rel_error: float = float("nan")  # ||U U^T - M||_F / ||M||_F at the end

    def looks_spurious(self, dof: int, grad_tol: float = 1e-6, eig_tol: float = 1e-6,
                       loss_tol: float = 1e-8) -> bool:
        """Enough data, (numerically) zero gradient, no negative curvature, and a loss on the
        observed entries above ``loss_tol``: a local minimum of the sampled objective that is not
        a global one (f >= 0, so a point with f ~ 0 is a global minimizer, even if U U^T != M)."""
        return (self.n_observed > dof and self.grad_norm < grad_tol and self.obs_loss > loss_tol
                and not math.isnan(self.min_hess_eig) and self.min_hess_eig > -eig_tol)


def inspect_completion_failures(sweep: CompletionSweep) -> list:
    """For every failed run of a :func:`completion_sweep`: observed entries, final loss on Omega,
    gradient norm and (when there are more observations than the d r - r(r-1)/2 degrees of
    freedom) the smallest eigenvalue of the Hessian of the completion objective."""
    d, r = sweep.d, sweep.rank
    dof = d * r - r * (r - 1) // 2
    out = []
    for a, b in zip(*np.nonzero(sweep.rel_error >= sweep.success_tol)):
        p = float(sweep.ps[a])
        M, mask = sweep.instance(a, b)
        n_obs = int(np.triu(mask).sum())
        lam = float("nan")
        if n_obs > dof:  # below the degrees of freedom the data cannot determine M anyway
            lam = float(np.linalg.eigvalsh(completion_hessian(sweep.X[a, b], M * mask, mask, p=p))[0])
        out.append(CompletionFailure(p, sweep.seeds[b], n_obs, float(sweep.obs_loss[a, b]),
                                     float(sweep.grad_norm[a, b]), lam, float(sweep.rel_error[a, b])))
    return out


# ---------------------------------------------------------------------------------------------
# teacher-student two-layer ReLU networks with Gaussian inputs (Safran & Shamir 2018)

def relu_kernel(w, v):
    """E[relu(w.x) relu(v.x)] for x ~ N(0, I): ||w|| ||v|| (sin t + (pi - t) cos t) / (2 pi), t the
    angle between w and v (Cho & Saul 2009). Broadcasts over leading axes; 0 if w or v is 0."""
    w = _as_float_array(w, "w")
    v = _as_float_array(v, "v")
    if w.shape[-1] != v.shape[-1]:
        raise ValueError(f"w and v must have the same last dimension, got {w.shape} and {v.shape}")
    nw = np.linalg.norm(w, axis=-1)
    nv = np.linalg.norm(v, axis=-1)
    denom = nw * nv
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.clip(np.sum(w * v, axis=-1) / np.where(denom > 0, denom, 1.0), -1.0, 1.0)
    t = np.arccos(c)
    return denom * (np.sin(t) + (math.pi - t) * c) / (2 * math.pi)


def teacher_student_loss(W, V) -> np.ndarray:
    """Population loss 1/2 E_x (sum_i relu(w_i.x) - sum_j relu(v_j.x))^2 for x ~ N(0, I_d),
    in closed form. W: (..., n, d) students, V: (k, d) teacher; returns shape (...)."""
    W = _as_float_array(W, "W", min_ndim=2)
    V = _as_float_array(V, "V", min_ndim=2)
    if V.ndim != 2 or W.shape[-1] != V.shape[-1]:
        raise ValueError(f"V must be (k, d) with the d of W (..., n, d); got W {W.shape}, V {V.shape}")
    ww = relu_kernel(W[..., :, None, :], W[..., None, :, :]).sum((-1, -2))
    wv = relu_kernel(W[..., :, None, :], V[None, :, :] if W.ndim > 2 else V[None]).sum((-1, -2))
    vv = relu_kernel(V[:, None, :], V[None, :, :]).sum()
    return 0.5 * (ww - 2 * wv + vv)


def _ts_grad_torch(W, U, sgn, mask, torch):
    """Gradient of the closed-form population loss for a batch W (S, n, d); U = [W, V] stacked,
    sgn = (+1 for students, -1 for teachers), mask zeroes the exact self-angles."""
    n = W.shape[1]
    un = U.norm(dim=-1)
    Uhat = U / un.clamp_min(1e-300)[..., None]
    What = Uhat[:, :n]
    c = (What @ Uhat.transpose(1, 2)).clamp_(-1.0, 1.0)
    th = torch.arccos(c).mul_(mask)
    # d/dw E[relu(w.x) relu(u.x)] = (||u|| sin t * w/||w|| + (pi - t) u) / (2 pi)
    G = ((torch.sin(th) * un[:, None, :]) @ sgn)[..., None] * What + ((math.pi - th) * sgn) @ U
    return G / (2 * math.pi)


def teacher_student_grad(W, V) -> np.ndarray:
    """Gradient of :func:`teacher_student_loss` with respect to W (..., n, d), in closed form."""
    W = _as_float_array(W, "W", min_ndim=2)
    V = _as_float_array(V, "V", min_ndim=2)
    if V.ndim != 2 or W.shape[-1] != V.shape[-1]:
        raise ValueError(f"V must be (k, d) with the d of W (..., n, d); got W {W.shape}, V {V.shape}")
    if np.any(np.linalg.norm(W, axis=-1) == 0):
        raise ValueError("the loss is not differentiable at a zero student neuron")
    shape = W.shape
    Wb = W.reshape(-1, *shape[-2:])
    n, k = shape[-2], V.shape[0]
    nw = np.linalg.norm(Wb, axis=-1, keepdims=True)
    What = Wb / nw
    U = np.concatenate([Wb, np.broadcast_to(V, (Wb.shape[0], k, V.shape[1]))], axis=1)
    un = np.linalg.norm(U, axis=-1)
    Uhat = U / np.where(un > 0, un, 1.0)[..., None]
    th = np.arccos(np.clip(What @ np.swapaxes(Uhat, 1, 2), -1, 1))
    th[:, np.arange(n), np.arange(n)] = 0.0
    sgn = np.concatenate([np.ones(n), -np.ones(k)])
    G = ((np.sin(th) * un[:, None, :]) @ sgn)[..., None] * What + ((math.pi - th) * sgn) @ U
    return (G / (2 * math.pi)).reshape(shape)


@dataclass
class TeacherStudentResult:
    """Final state of GD restarts on a teacher-student ReLU problem (one row per seed)."""

    seeds: list
    losses: np.ndarray       # final loss per seed
    grad_norms: np.ndarray   # final gradient norm per seed
    W: np.ndarray            # final student weights (S, n, d)
    teacher_k: int
    student_k: int
    d: int
    steps: int
    lr: float
    loss_tol: float
    grad_tol: float
    diverged: np.ndarray

    @property
    def success(self) -> np.ndarray:
        return self.losses < self.loss_tol

    @property
    def spurious(self) -> np.ndarray:
        """Stuck: gradient below grad_tol but loss above loss_tol (a spurious critical point)."""
        return (self.grad_norms < self.grad_tol) & (self.losses >= self.loss_tol) & ~self.diverged

    @property
    def unconverged(self) -> np.ndarray:
        return ~self.success & ~self.spurious


def _seed_list(seeds):
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        return list(range(_count(seeds, "seeds")))
    try:
        out = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise ValueError("seeds must be a count or a sequence of integer seeds") from None
    if not out or any(s < 0 for s in out):
        raise ValueError("seeds must be non-empty and non-negative")
    return out


def teacher_student_relu(teacher_k: int, student_k: int, d: int | None = None, samples: int | None = None,
                         steps: int = 2000, seeds=50, lr: float = 0.5, loss_tol: float = 1e-6,
                         grad_tol: float = 1e-6, device: str | None = None) -> TeacherStudentResult:
    """GD restarts on the teacher-student problem of Safran & Shamir (2018), batched over seeds.

    Teacher: sum_{j<k} relu(e_j . x) (orthonormal v_j = e_j, needs d >= k; d defaults to k).
    Student: sum_{i<n} relu(w_i . x), started Xavier-uniform (U(-a, a), a = sqrt(6/(d+n))) from
    ``np.random.default_rng(seed)``, one start per seed. Loss: 1/2 E(student - teacher)^2 with
    x ~ N(0, I_d), computed in closed form when ``samples`` is None, else on a fixed Gaussian
    sample of that size (drawn from the seed). Plain GD with step ``lr`` in float64, all seeds in
    one tensor. ``seeds``: a count (0..S-1) or a list of seeds. ``device``: a torch device name;
    ``None`` follows ``DLT_DEVICE`` (a GPU when torch sees one, see :func:`helpers.repro.device`).
    Each seed's run does not depend on the others in the batch: a loop of single-seed calls
    gives the same numbers (:func:`batched_speedup` measures both).
    """
    import torch

    k = _count(teacher_k, "teacher_k")
    n = _count(student_k, "student_k")
    d = k if d is None else _count(d, "d")
    if d < k:
        raise ValueError(f"the teacher uses e_1..e_k, so d must be >= teacher_k={k}; got d={d}")
    if samples is not None:
        samples = _count(samples, "samples")
    lr, steps = _check_step(lr, steps)
    loss_tol, grad_tol = _positive(loss_tol, "loss_tol"), _positive(grad_tol, "grad_tol")
    seeds = _seed_list(seeds)
    device = repro.torch_device(device)
    S = len(seeds)
    torch.set_flush_denormal(True)  # denormals in near-converged runs slow float64 GD ~15x
    dt = torch.float64
    a = math.sqrt(6.0 / (d + n))
    W0 = np.stack([np.random.default_rng(s).uniform(-a, a, (n, d)) for s in seeds])
    W = torch.tensor(W0, dtype=dt, device=device)
    V = torch.eye(k, d, dtype=dt, device=device)
    Vb = V.expand(S, k, d)
    diverged = torch.zeros(S, dtype=torch.bool, device=device)
    if samples is None:
        sgn = torch.cat([torch.ones(n, dtype=dt), -torch.ones(k, dtype=dt)]).to(device)
        mask = torch.ones(n, n + k, dtype=dt, device=device)
        mask[:, :n] -= torch.eye(n, dtype=dt, device=device)

        def grad(W):
            return _ts_grad_torch(W, torch.cat([W, Vb], 1), sgn, mask, torch)
    else:
        X = torch.tensor(np.stack([np.random.default_rng(10_000 + s).standard_normal((samples, d)) for s in seeds]),
                         dtype=dt, device=device)
        y = torch.relu(X @ V.T).sum(-1)

        def grad(W):
            pre = X @ W.transpose(1, 2)                      # (S, N, n)
            r = torch.relu(pre).sum(-1) - y                   # residuals (S, N)
            return ((r[..., None] * (pre > 0)).transpose(1, 2) @ X) / samples

    G = grad(W)
    for _ in range(steps):
        Wn = W - lr * G
        # a diverging restart keeps its last finite iterate; no host sync (bad.any()) per step
        bad = ~torch.isfinite(Wn).all(dim=(1, 2))
        diverged |= bad
        W = torch.where(bad[:, None, None], W, Wn)
        G = grad(W).masked_fill_(diverged[:, None, None], 0.0)
    Wf = W.cpu().numpy()
    if samples is None:
        with np.errstate(over="ignore", invalid="ignore"):  # diverged rows are set to inf below
            losses = teacher_student_loss(Wf, np.eye(k, d))
    else:
        pre = X @ W.transpose(1, 2)
        losses = (0.5 * ((torch.relu(pre).sum(-1) - y) ** 2).mean(-1)).cpu().numpy()
    gn = G.flatten(1).norm(dim=1).cpu().numpy()
    losses = np.where(diverged.cpu().numpy(), np.inf, losses)
    return TeacherStudentResult(seeds, losses, gn, Wf, k, n, d, steps, lr, loss_tol, grad_tol,
                                diverged.cpu().numpy())


def teacher_student_hessian(W, teacher_k: int) -> np.ndarray:
    """Hessian (n d x n d) of the closed-form population loss at one student W (n, d) with the
    teacher e_1..e_k, by torch autograd in float64 (student neurons must be pairwise non-parallel)."""
    import torch

    W = _as_float_array(W, "W", min_ndim=2)
    if W.ndim != 2:
        raise ValueError(f"W must be one student (n, d), got shape {W.shape}")
    n, d = W.shape
    k = _count(teacher_k, "teacher_k")
    if d < k:
        raise ValueError(f"d={d} must be >= teacher_k={k}")
    V = torch.eye(k, d, dtype=torch.float64)

    def kern(A, B, same):
        na, nb = A.norm(dim=-1), B.norm(dim=-1)
        c = (A @ B.T) / (na[:, None] * nb[None, :])
        if same:  # the diagonal is exactly ||w||^2/2; keep arccos away from its singular point 1
            c = c.masked_fill(torch.eye(len(A), dtype=torch.bool), 0.0)
        t = torch.arccos(c.clamp(-1, 1))
        K = na[:, None] * nb[None, :] * (torch.sin(t) + (math.pi - t) * c) / (2 * math.pi)
        if same:
            K = K.masked_fill(torch.eye(len(A), dtype=torch.bool), 0.0) + torch.diag(na**2 / 2)
        return K.sum()

    def loss(w):
        Wt = w.reshape(n, d)
        return 0.5 * (kern(Wt, Wt, True) - 2 * kern(Wt, V, False) + kern(V, V, True))

    H = torch.autograd.functional.hessian(loss, torch.tensor(W.ravel(), dtype=torch.float64))
    H = H.numpy()
    return (H + H.T) / 2


# ---------------------------------------------------------------------------------------------
# the spurious-minima table (Safran & Shamir 2018) at any scale, and batched vs looped restarts

def stable_lr(teacher_k: int, student_k: int | None = None, base: float = 0.5) -> float:
    """The GD step used for the spurious-minima table: ``min(base, 6 / max(k, n))``.

    The largest Hessian eigenvalue of the population loss at the global minimum grows about
    linearly in k (about 3.1 at k = 10, 5.7 at k = 20), so a fixed step makes GD oscillate
    around the minimum once 2 / lambda_max drops below it (k >= 14 for the step 0.5). 6 / k stays
    below 2 / lambda_max for every k <= 20 and equals 0.5 up to k = 12.
    """
    k = _count(teacher_k, "teacher_k")
    n = k if student_k is None else _count(student_k, "student_k")
    return min(_positive(base, "base"), 6.0 / max(k, n))


def _table_configs(ks) -> list:
    try:
        items = list(ks)
    except TypeError:
        raise ValueError("ks must be a sequence of teacher sizes k (student n = k) or of (k, n) pairs") from None
    if not items:
        raise ValueError("ks is empty: give at least one teacher size k or (k, n) pair")
    out = []
    for item in items:
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise ValueError(f"a (k, n) pair must have two entries, got {item!r}")
            out.append((_count(item[0], "k"), _count(item[1], "n")))
        else:
            k = _count(item, "k")
            out.append((k, k))
    return out


def _table_point(k: int, n: int, restarts: int, steps: int, lr: float, device: str, threads: int):
    """One row of the spurious-minima table; runs in a sweep worker (its result cached at paper scale)."""
    import time

    import torch

    from helpers import sweep

    if threads:
        torch.set_num_threads(threads)
    fn = sweep.cached(_timed_teacher_student)
    hit = bool(getattr(fn, "check_call_in_cache", lambda *a: False)(k, n, restarts, steps, lr, device))
    t0 = time.perf_counter()
    res, seconds = fn(k, n, restarts, steps, lr, device)
    return res, seconds, hit, time.perf_counter() - t0


def _timed_teacher_student(k, n, restarts, steps, lr, device):
    import time

    t0 = time.perf_counter()
    res = teacher_student_relu(k, n, None, None, steps, restarts, lr=lr, device=device)
    return res, time.perf_counter() - t0


@dataclass
class SpuriousTable:
    """The teacher-student spurious-minima table: one :class:`TeacherStudentResult` per (k, n)."""

    rows: list              # TeacherStudentResult, in the order of the configurations given
    restarts: int
    steps: int
    lrs: list               # GD step per row
    seconds: list           # computing time of each row (as first computed, also when read from the cache)
    cached: list            # whether each row was read from the on-disk cache
    wall_s: float           # wall time of this call
    backend: str            # "sequential", "loky", "local-dask" or a scheduler address
    n_jobs: int
    device: str

    @property
    def compute_s(self) -> float:
        """Total computing time of the rows (summed over the rows, whichever worker ran them)."""
        return float(sum(self.seconds))

    def row(self, k: int, n: int | None = None) -> TeacherStudentResult:
        """The result for teacher size k and student size n (default n = k)."""
        n = k if n is None else n
        for r in self.rows:
            if (r.teacher_k, r.student_k) == (k, n):
                return r
        raise ValueError(f"no row for k={k}, n={n}; rows: {[(r.teacher_k, r.student_k) for r in self.rows]}")

    @property
    def stuck(self) -> dict:
        """(k, n) -> fraction of restarts stuck at a spurious critical point."""
        return {(r.teacher_k, r.student_k): float(r.spurious.mean()) for r in self.rows}

    def timing(self) -> str:
        """One sentence: how long the table took, where, and how much came from the cache."""
        where = "this process" if self.backend == "sequential" else f"{self.n_jobs} {self.backend} workers"
        text = (f"{len(self.rows)} rows x {self.restarts} restarts x {self.steps} steps on {self.device}: "
                f"{self.compute_s:.1f} s of computation, {self.wall_s:.1f} s wall on {where}")
        hits = sum(self.cached)
        if hits:
            text += f" ({hits} of {len(self.rows)} rows read from the cache)"
        return text


def spurious_minima_table(ks, restarts: int, steps: int, lr: float | None = None, n_jobs: int | None = None,
                          device: str | None = None) -> SpuriousTable:
    """GD restarts on the Safran & Shamir (2018) teacher-student problem for every (k, n).

    ``ks``: teacher sizes k (student n = k) or (k, n) pairs. Each row is
    ``teacher_student_relu(k, n, None, None, steps, restarts, lr=lr)`` (seeds 0..restarts-1, all restarts
    one batched tensor computation), with ``lr=None`` meaning :func:`stable_lr`. Rows are spread
    over :func:`helpers.sweep.run` workers (local processes, or the Dask cluster in
    ``DLT_CLUSTER``), largest first, and cached on disk at paper scale
    (:func:`helpers.sweep.cached`). ``n_jobs=None``: one process at the default scale or on a
    GPU (the batch already fills it), every core at ``DLT_SCALE=paper`` on the CPU.
    """
    import os
    import time

    from helpers import sweep

    configs = _table_configs(ks)
    restarts = _count(restarts, "restarts")
    steps = _count(steps, "steps", minimum=0)
    if lr is not None:
        lr = _positive(lr, "lr")
    device = repro.torch_device(device)
    cores = os.cpu_count() or 1
    if n_jobs is None:
        n_jobs = cores if (repro.scale() == "paper" and device == "cpu") else 1
    n_jobs = _count(n_jobs, "n_jobs")
    threads = max(1, cores // n_jobs) if n_jobs > 1 else 0   # 0: keep this process's setting
    lrs = [lr if lr is not None else stable_lr(k, n) for k, n in configs]
    points = [dict(k=k, n=n, restarts=restarts, steps=steps, lr=a, device=device, threads=threads)
              for (k, n), a in zip(configs, lrs)]
    order = sorted(range(len(points)), key=lambda i: -points[i]["n"] * (points[i]["n"] + points[i]["k"]))
    t0 = time.perf_counter()
    out = sweep.run(_table_point, [points[i] for i in order], n_jobs=n_jobs, desc="spurious-minima table")
    wall = time.perf_counter() - t0
    out.raise_failures()
    values = [None] * len(points)
    for i, v in zip(order, out.values):
        values[i] = v
    return SpuriousTable([v[0] for v in values], restarts, steps, lrs, [float(v[1]) for v in values],
                         [bool(v[2]) for v in values], wall, out.backend, n_jobs, device)


@dataclass
class BatchedSpeedup:
    """Restarts of :func:`teacher_student_relu` as one batch against a Python loop over restarts."""

    restarts: int
    k: int
    n: int
    steps: int
    device: str
    loop_s: float          # wall time of the loop of single-restart calls
    batched_s: float       # wall time of one batched call
    speedup: float         # loop_s / batched_s
    max_abs_diff: float    # largest |final loss, batched - final loss, loop| over the restarts
    max_abs_diff_W: float  # the same for the final weights


def batched_speedup(restarts: int, k: int = 10, n: int | None = None, steps: int = 500,
                    lr: float | None = None, device: str | None = None, threads: int | None = None,
                    seed: int = 0) -> BatchedSpeedup:
    """Time ``restarts`` GD restarts of the teacher-student problem batched against a loop.

    The same seeds (``seed .. seed + restarts - 1``) run once as one batched call and once as
    a loop of single-seed calls; both give the same final losses and weights (to rounding).
    ``threads``: torch threads during the timing (restored afterwards; None keeps the current).
    """
    import time

    import torch

    restarts = _count(restarts, "restarts")
    k = _count(k, "k")
    n = k if n is None else _count(n, "n")
    steps = _count(steps, "steps")
    lr = stable_lr(k, n) if lr is None else _positive(lr, "lr")
    device = repro.torch_device(device)
    seed = _count(seed, "seed", minimum=0)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(_count(threads, "threads"))
    seeds = list(range(seed, seed + restarts))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    try:
        teacher_student_relu(k, n, None, None, 2, seeds[:2], lr=lr, device=device)  # warm-up
        sync()
        t0 = time.perf_counter()
        batch = teacher_student_relu(k, n, None, None, steps, seeds, lr=lr, device=device)
        sync()
        t1 = time.perf_counter()
        loop = [teacher_student_relu(k, n, None, None, steps, [s], lr=lr, device=device) for s in seeds]
        sync()
        t2 = time.perf_counter()
    finally:
        torch.set_num_threads(before)
    loop_losses = np.concatenate([r.losses for r in loop])
    loop_W = np.concatenate([r.W for r in loop])
    with np.errstate(invalid="ignore"):  # inf - inf for a restart that diverged in both
        dl = np.where(np.isinf(loop_losses) & (loop_losses == batch.losses), 0.0, np.abs(batch.losses - loop_losses))
    return BatchedSpeedup(restarts, k, n, steps, device, t2 - t1, t1 - t0, (t2 - t1) / (t1 - t0),
                          float(np.max(dl)), float(np.max(np.abs(batch.W - loop_W))))


# ---------------------------------------------------------------------------------------------
# overcomplete tensor decomposition: maximize sum_i <a_i, x>^4 on the sphere

@dataclass
class TensorAscentResult:
    """Where projected gradient ascent of sum_i <a_i, x>^4 on the sphere ended (one row per restart)."""

    x: np.ndarray        # (R, d) final unit vectors
    index: np.ndarray    # (R,) the component a_i closest to +-x
    sign: np.ndarray     # (R,) +1 or -1: x is close to sign * a_i / ||a_i||
    overlap: np.ndarray  # (R,) max_i |<a_i / ||a_i||, x>|
    value: np.ndarray    # (R,) sum_i <a_i, x>^4


def tensor_power_ascent(A, steps: int, seed: int = 0, lr: float = 1.0, restarts: int = 1) -> TensorAscentResult:
    """Projected gradient ascent x <- (x + lr grad f(x)) / ||x + lr grad f(x)|| of
    f(x) = sum_i <a_i, x>^4 on the unit sphere (grad f = 4 A^T (A x)^3), from uniform random
    starts. Because f is convex and homogeneous, every lr > 0 increases f at every step.

    A: (m, d), rows a_i (any nonzero rows; m may exceed d: the overcomplete case). Returns which
    a_i (up to sign) each of ``restarts`` runs lands on and how close it gets.
    """
    A = _as_float_array(A, "A", min_ndim=2)
    if A.ndim != 2:
        raise ValueError(f"A must be a matrix whose rows are the components a_i, got shape {A.shape}")
    norms = np.linalg.norm(A, axis=1)
    if np.any(norms == 0):
        raise ValueError("A has a zero row; every component a_i must be nonzero")
    steps = _count(steps, "steps", minimum=0)
    lr = _positive(lr, "lr")
    restarts = _count(restarts, "restarts")
    m, d = A.shape
    X = repro.rng(seed).standard_normal((restarts, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    for _ in range(steps):
        G = 4.0 * ((X @ A.T) ** 3) @ A
        Y = X + lr * G
        X = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    C = (X @ A.T) / norms
    idx = np.argmax(np.abs(C), axis=1)
    best = C[np.arange(restarts), idx]
    return TensorAscentResult(X, idx, np.sign(best).astype(int), np.abs(best), np.sum((X @ A.T) ** 4, axis=1))


@dataclass
class TensorSweep:
    """Overlaps reached by tensor ascent for several numbers of components m."""

    d: int
    ms: np.ndarray
    overlaps: np.ndarray   # (len(ms), restarts)
    threshold: float
    X: list = field(default_factory=list)  # final points per m, each (restarts, d)
    seed: int = 0

    def components(self, a: int) -> np.ndarray:
        """The unit vectors a_i (rows) used for ms[a], regenerated from the seed."""
        return _unit_rows(repro.rng(self.seed + 101 * a), int(self.ms[a]), self.d)

    @property
    def fraction_above(self) -> np.ndarray:
        return np.mean(self.overlaps > self.threshold, axis=1)


def tensor_overlap_sweep(d: int, ms, restarts: int, steps: int, seed: int = 0, threshold: float = 0.9,
                         lr: float = 1.0) -> TensorSweep:
    """For each m: m random unit vectors a_i in R^d and ``restarts`` runs of tensor_power_ascent."""
    d = _count(d, "d")
    ms = np.asarray([_count(int(m), "m") for m in ms])
    out = np.empty((ms.size, restarts))
    Xs = []
    for a, m in enumerate(ms):
        A = _unit_rows(repro.rng(seed + 101 * a), int(m), d)
        res = tensor_power_ascent(A, steps, seed=seed + 101 * a + 1, lr=lr, restarts=restarts)
        out[a] = res.overlap
        Xs.append(res.x)
    return TensorSweep(d, ms, out, threshold, Xs, seed)


def _unit_rows(rng, m, d):
    A = rng.standard_normal((m, d))
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def tensor_riemannian_hessian_max(A, x) -> float:
    """Largest eigenvalue of the Riemannian Hessian of T(x) = sum_i <a_i, x>^4 on the unit sphere
    at x, restricted to the tangent space: B^T (12 A^T diag((Ax)^2) A - 4 T(x) I) B, B an orthonormal
    basis of x's orthogonal complement. At a local maximum it is <= 0."""
    A = _as_float_array(A, "A", min_ndim=2)
    x = _as_float_array(x, "x")
    if x.shape != (A.shape[1],):
        raise ValueError(f"x must have shape ({A.shape[1]},), got {x.shape}")
    x = x / np.linalg.norm(x)
    Ax = A @ x
    H = 12.0 * (A.T * Ax**2) @ A - 4.0 * np.sum(Ax**4) * np.eye(x.size)
    B = _null_space(x[None, :])
    return float(np.linalg.eigvalsh(B.T @ H @ B)[-1])


def _null_space(M):
    """Orthonormal basis of the null space of M (via the SVD)."""
    _, sv, Vt = np.linalg.svd(M)
    rank = int(np.sum(sv > 1e-12 * max(1.0, sv.max() if sv.size else 0.0)))
    return Vt[rank:].T


@dataclass
class TensorException:
    """A tensor-ascent run that ended with best overlap below the threshold."""

    m: int
    top_overlaps: np.ndarray  # the three largest |<a_i, x>|
    top_pair_corr: float      # |<a_i, a_j>| for the two components closest to x
    hess_max: float           # largest Riemannian Hessian eigenvalue (<= 0: a local maximum)


def tensor_exceptions(sweep: TensorSweep, a: int) -> list:
    """Inspect the runs for ms[a] whose best overlap is below the sweep's threshold."""
    A = sweep.components(a)
    out = []
    for x, ov in zip(sweep.X[a], sweep.overlaps[a]):
        if ov >= sweep.threshold:
            continue
        c = np.abs(A @ x)
        top = np.argsort(c)[::-1][:3]
        out.append(TensorException(int(sweep.ms[a]), c[top], float(abs(A[top[0]] @ A[top[1]])),
                                   tensor_riemannian_hessian_max(A, x)))
    return out




# ---------------------------------------------------------------------------------------------
# plots

def _fig(ncols=1, width=None, height=3.2):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width or 3.6 * ncols, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


_GRID = None


def _l2l4_grid():
    global _GRID
    if _GRID is None:
        s = np.linspace(-1.25, 1.25, 101)
        X, Y = np.meshgrid(s, s)
        _GRID = (X, Y, l2l4(np.stack([X, Y], -1)))
    return _GRID


def _draw_l2l4(ax):
    X, Y, Z = _l2l4_grid()
    # imshow renders several times faster than contourf: the widget redraws this at every move
    ax.imshow(Z, extent=(X.min(), X.max(), Y.min(), Y.max()), origin="lower", cmap="viridis",
              alpha=0.85, interpolation="bilinear")
    c = 1 / math.sqrt(2)
    pts = critical_points_l2l4(2)
    for p in pts:
        label, _ = classify(l2l4_hessian(p))
        style = {"min": ("*", "#2ca02c", 150), "saddle": ("X", "#d62728", 80), "max": ("o", "white", 60)}[label]
        ax.scatter(*p, marker=style[0], c=style[1], s=style[2], edgecolors="k", zorder=5, linewidths=0.6)
    ax.set_aspect("equal")
    ax.set_xlim(-1.25, 1.25)
    ax.set_ylim(-1.25, 1.25)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    # plain-text tick labels: mathtext layout is the slowest part of redrawing the widget
    ax.set_xticks([-c, 0, c], ["-0.71", "0", "0.71"])
    ax.set_yticks([-c, 0, c], ["-0.71", "0", "0.71"])
    ax.grid(False)


def plot_l2l4_paths(paths: dict, title: str = ""):
    """The 2-D l2-l4 landscape (stars: minima, crosses: saddles, circle: maximum) and paths."""
    from matplotlib.figure import Figure

    from helpers.plotting import COLORS

    fig = Figure(figsize=(4.4, 4.2))  # fixed margins, no layout engine: cheaper redraws
    ax = fig.add_axes((0.14, 0.2, 0.8, 0.72))
    _draw_l2l4(ax)
    colors = [COLORS["gd"], COLORS["sgd"], COLORS["other"], "white"]
    for (name, path), col in zip(paths.items(), colors):
        path = np.asarray(path)
        ls, lw = ("--", 1.8) if "perturbed" in name else ("-", 3.5)  # GD drawn wider: paths overlap
        ax.plot(path[:, 0], path[:, 1], ls, color=col, lw=lw, label=name)
        ax.scatter(*path[0], c=col, s=25, zorder=6)
        ax.scatter(*path[-1], marker="s", c=col, s=30, zorder=6, edgecolors="k")
    if paths:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=1, frameon=False)
    ax.set_title(title)
    return fig


@dataclass
class SaddleWidgetResult:
    start: tuple
    gd_path: np.ndarray
    pgd_path: np.ndarray
    gd_end: str
    pgd_end: str
    perturbed_at: list


def _end_label(x):
    g = np.linalg.norm(l2l4_grad(x))
    if g > 1e-4:
        return "not yet stationary"
    label, _ = classify(l2l4_hessian(x), 1e-6)
    return label


def saddle_widget_compute(x0: float, y0: float, lr: float = 0.05, steps: int = 300, radius: float = 1e-3):
    """GD and perturbed GD on the 2-D l2-l4 function from (x0, y0) (the chapter's widget)."""
    start = np.array([x0, y0], dtype=float)
    a = gd(l2l4_grad, start, lr, steps)
    b = perturbed_gd(l2l4_grad, l2l4_hessian, start, lr, steps, radius, seed=0)
    if a.diverged or b.diverged:
        raise ValueError("a run diverged; the grid keeps starts where it does not")
    return SaddleWidgetResult((x0, y0), a.path, b.path, _end_label(a.x), _end_label(b.x), b.perturbed_at)


def saddle_widget_plot(res: SaddleWidgetResult):
    fig = plot_l2l4_paths({f"GD -> {res.gd_end}": res.gd_path,
                           f"perturbed GD -> {res.pgd_end}": res.pgd_path},
                          title=f"start ({res.start[0]:g}, {res.start[1]:g})")
    return fig


@widgets.register("ch02-saddles")
def saddle_widget_spec() -> widgets.Spec:
    """Start GD anywhere on a 6 x 6 grid of the 2-D l2-l4 landscape; starts on an axis sit on
    the stable manifold of a saddle, where plain GD stays and perturbed GD leaves."""
    vals = [-1.0, -0.4, 0.0, 0.02, 0.5, 1.1]
    return widgets.Spec(saddle_widget_compute, saddle_widget_plot, {"x0": vals, "y0": vals},
                        title="Gradient descent on f(x) = -|x|² + |x|⁴₄: where does it stop?",
                        default={"x0": 0.5, "y0": 0.0},
                        labels={"x0": "start x₁", "y0": "start x₂"})


def plot_escape(path, center, radius, perturbed_at: int, predicted: float):
    """Distance to the saddle along a perturbed-GD run, log scale, with the predicted escape step."""
    fig, (ax,) = _fig(1, width=5.0, height=3.0)
    dist = np.linalg.norm(np.asarray(path) - center, axis=1)
    t = np.arange(len(dist)) - perturbed_at
    ax.semilogy(t[perturbed_at + 1:], dist[perturbed_at + 1:], label="perturbed GD")
    ax.axhline(radius, color="k", lw=0.8, ls=":")
    ax.axvline(predicted, color="#d62728", ls="--", label=f"predicted escape: {predicted:.1f} steps")
    ax.set_xlabel("steps after the perturbation")
    ax.set_ylabel("distance to the saddle 0")
    ax.legend()
    return fig


def plot_completion(sweep: CompletionSweep):
    """Success rate and final relative error against the sampling rate p."""
    fig, (a1, a2) = _fig(2, width=8.0, height=3.0)
    a1.plot(sweep.ps, sweep.successes / len(sweep.seeds), "o-")
    a1.set_xlabel("sampling probability $p$")
    a1.set_ylabel("fraction recovered")
    a1.set_ylim(-0.05, 1.05)
    for j in range(len(sweep.seeds)):
        a2.scatter(sweep.ps, np.maximum(sweep.rel_error[:, j], 1e-16), s=12, c="#1f77b4", alpha=0.6)
    a2.set_yscale("log")
    a2.axhline(sweep.success_tol, color="k", ls=":", lw=0.8)
    a2.set_xlabel("sampling probability $p$")
    a2.set_ylabel(r"$\|UU^\top - M\|_F / \|M\|_F$")
    return fig


def plot_teacher_student(rows: list):
    """Fraction of restarts stuck at spurious minima per (k, n) and the final losses."""
    fig, (a1, a2) = _fig(2, width=8.0, height=3.0)
    labels = [f"k={r.teacher_k}\nn={r.student_k}" for r in rows]
    a1.bar(range(len(rows)), [r.spurious.mean() for r in rows],
           color=["#1f77b4" if r.student_k == r.teacher_k else "#2ca02c" for r in rows])
    a1.set_xticks(range(len(rows)), labels)
    a1.set_ylabel("fraction stuck (spurious)")
    for i, r in enumerate(rows):
        a2.scatter(np.full(len(r.losses), i) + np.linspace(-0.2, 0.2, len(r.losses)),
                   np.maximum(r.losses, 1e-18), s=6, alpha=0.6)
    a2.set_yscale("log")
    a2.set_xticks(range(len(rows)), labels)
    a2.set_ylabel("final population loss")
    return fig


def plot_tensor(sweep: TensorSweep):
    """Distribution of the best overlap max_i |<a_i, x>| reached, against m / d."""
    fig, (ax,) = _fig(1, width=5.0, height=3.0)
    ratios = sweep.ms / sweep.d
    ax.boxplot(list(sweep.overlaps), positions=range(len(ratios)), widths=0.5)
    ax.set_xticks(range(len(ratios)), [f"{r:g}" for r in ratios])
    ax.axhline(sweep.threshold, color="#d62728", ls="--", lw=1)
    ax.set_xlabel("number of components $m / d$")
    ax.set_ylabel(r"$\max_i |\langle a_i, x\rangle|$ at the end")
    return fig
