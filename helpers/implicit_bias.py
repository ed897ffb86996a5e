"""Implicit bias of optimisation algorithms; shared by chapters 1, 7 and 8.

When a problem has many zero-loss solutions, *which* one an optimiser returns is decided by
the optimiser: its start, its geometry and its step sizes. This module holds small, exact
experiments on that theme.

Chapter 1 (Srebro's talk) uses:

- :func:`gd_least_squares`, :func:`sgd_least_squares`: gradient descent (full batch, or one
  row at a time) on an underdetermined least-squares problem converges to the interpolating
  solution closest in Euclidean distance to its start, ``w0 + pinv(X) @ (y - X @ w0)``.
- :func:`exponentiated_gradient` and its reference :func:`min_kl_solution`: multiplicative
  updates converge to the solution closest to the start in (generalised) KL divergence
  (mirror descent with the entropy potential; Kivinen & Warmuth 1997, Gunasekar et al. 2018).
- :func:`min_l1_solution` (linear programming) and :func:`min_l2_solution`: references.
- :func:`adam_least_squares`, :func:`sign_gd_least_squares`: adaptive/sign methods reach zero
  loss at a different solution (Wilson et al. 2017).

Functions validate their inputs and raise ``ValueError`` with what is wrong; divergence is
reported in the result (``diverged=True``), never raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


# --------------------------------------------------------------------------- chapter 1
@dataclass
class FitResult:
    """The outcome of an iterative least-squares solver.

    ``w``: final iterate; ``loss``: the loss ``||X w - y||^2 / (2 n)`` after each recorded step
    (entry 0 is the start); ``path``: the iterates at the recorded steps (``None`` unless
    asked for); ``steps``: iterations run; ``converged``: stopped by the tolerance;
    ``diverged``: the loss became non-finite or exploded (``w`` is then the last finite iterate).
    """

    w: np.ndarray
    loss: np.ndarray
    path: np.ndarray | None = None
    steps: int = 0
    lr: float = 0.0
    converged: bool = False
    diverged: bool = False
    info: dict = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])


def _check_xy(X, y):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a non-empty 2-D array (n samples x d features), got shape {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be a 1-D array with one entry per row of X ({X.shape[0]}), got shape {y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must be finite (no nan or inf)")
    return X, y


def _check_w0(w0, d, positive=False):
    if w0 is None:
        return np.zeros(d)
    w0 = np.asarray(w0, dtype=float)
    if np.ndim(w0) == 0:
        w0 = np.full(d, float(w0))
    if w0.shape != (d,):
        raise ValueError(f"w0 must have shape ({d},) (one entry per column of X), got {w0.shape}")
    if not np.all(np.isfinite(w0)):
        raise ValueError("w0 must be finite")
    if positive and not np.all(w0 > 0):
        raise ValueError("w0 must be strictly positive (multiplicative updates cannot leave zero)")
    return w0


def _check_steps(steps, name="steps"):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"{name} must be a positive integer, got {steps!r}")
    return int(steps)


def _check_lr(lr):
    if isinstance(lr, bool) or not np.isscalar(lr) or not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"the step size lr must be a positive finite number, got {lr!r}")
    return float(lr)


def _check_record_every(record_every):
    if isinstance(record_every, bool) or not isinstance(record_every, (int, np.integer)) or record_every < 1:
        raise ValueError(f"record_every must be a positive integer, got {record_every!r}")
    return int(record_every)


def _ls_loss(X, y, w):
    r = X @ w - y
    return float(r @ r) / (2 * X.shape[0])


def smoothness(X) -> float:
    """The Lipschitz constant of the gradient of ``||X w - y||^2 / (2n)``: ``sigma_max(X)^2 / n``."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    return float(np.linalg.norm(X, 2) ** 2 / X.shape[0])


def min_l2_solution(X, y, w0=None) -> np.ndarray:
    """The least-squares solution closest to ``w0`` in Euclidean norm: ``w0 + pinv(X) (y - X w0)``.

    With ``w0 = 0`` this is the minimum-norm solution ``pinv(X) y``.
    """
    X, y = _check_xy(X, y)
    w0 = _check_w0(w0, X.shape[1])
    return w0 + np.linalg.lstsq(X, y - X @ w0, rcond=None)[0]


def gd_least_squares(X, y, w0=None, lr=None, steps=1_000_000, tol=1e-13, record_path=False, record_every=1):
    """Full-batch gradient descent on ``L(w) = ||X w - y||^2 / (2 n)``.

    Every gradient ``X^T (X w - y) / n`` lies in the row space of ``X``, so the iterates stay
    in ``w0 + rowspace(X)``; if they converge, the limit is the least-squares solution in that
    affine set, ``w0 + pinv(X) (y - X w0)``: the solution closest to the start (from ``w0 = 0``,
    the minimum-norm solution). See e.g. Gunasekar et al. (2018), Zhang et al. (2017).

    ``lr`` defaults to ``1 / L`` with ``L = sigma_max(X)^2 / n`` (GD converges for ``lr < 2 / L``).
    Runs at most ``steps`` iterations and stops early when the update is below
    ``tol * (1 + ||w||)`` (``tol=0`` runs every step). ``record_path`` keeps every
    ``record_every``-th iterate (for pictures).
    """
    X, y = _check_xy(X, y)
    n, d = X.shape
    w = _check_w0(w0, d).copy()
    steps = _check_steps(steps)
    record_every = _check_record_every(record_every)
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    L = smoothness(X)
    if lr is None:
        if L == 0:
            raise ValueError("X is all zeros: the loss is constant and there is nothing to descend")
        lr = 1.0 / L
    lr = _check_lr(lr)
    r = X @ w - y
    losses = [float(r @ r) / (2 * n)]
    path = [w.copy()] if record_path else None
    converged = diverged = False
    k = 0
    limit = 1e12 * (losses[0] + 1.0)  # explode guard: the loss of a stable run never grows
    for k in range(1, steps + 1):
        step = (lr / n) * (X.T @ r)
        w_new = w - step
        r_new = X @ w_new - y
        loss = float(r_new @ r_new) / (2 * n)
        if not np.isfinite(loss) or loss > limit:
            diverged = True
            losses.append(float("inf") if not np.isfinite(loss) else loss)
            break
        w, r = w_new, r_new
        if k % record_every == 0:
            losses.append(loss)
            if record_path:
                path.append(w.copy())
        if tol > 0 and np.linalg.norm(step) <= tol * (1.0 + np.linalg.norm(w)):
            converged = True
            break
    if (k % record_every != 0 or converged) and not diverged and len(losses) and losses[-1] != _ls_loss(X, y, w):
        losses.append(_ls_loss(X, y, w))
        if record_path:
            path.append(w.copy())
    return FitResult(w=w, loss=np.asarray(losses), path=None if path is None else np.asarray(path),
                     steps=k, lr=lr, converged=converged, diverged=diverged)


def sgd_least_squares(X, y, w0=None, lr=None, epochs=2000, seed=0, order="shuffle", tol=1e-13,
                      record_path=False):
    """Stochastic gradient descent, one row of ``X`` at a time, on ``||X w - y||^2 / (2 n)``.

    The update ``w -= lr * (x_i . w - y_i) x_i`` also moves only inside the row space, so when
    the system ``X w = y`` is consistent SGD converges to the same limit as GD,
    ``w0 + pinv(X) (y - X w0)`` (with ``lr = 1/||x_i||^2`` it is the Kaczmarz method).
    With an inconsistent system a constant step does not converge.

    ``lr`` defaults to ``1 / max_i ||x_i||^2`` (stable for ``lr < 2 / max_i ||x_i||^2``).
    ``order``: ``"shuffle"`` (a fresh permutation every epoch, from ``seed``) or ``"cyclic"``.
    The loss and (optionally) the path are recorded once per epoch; stops when an epoch
    moves ``w`` by less than ``tol * (1 + ||w||)``.
    """
    X, y = _check_xy(X, y)
    n, d = X.shape
    w = _check_w0(w0, d).copy()
    epochs = _check_steps(epochs, "epochs")
    if order not in ("shuffle", "cyclic"):
        raise ValueError(f"order must be 'shuffle' or 'cyclic', got {order!r}")
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    row_sq = np.einsum("ij,ij->i", X, X)
    if lr is None:
        if row_sq.max() == 0:
            raise ValueError("X is all zeros: the loss is constant and there is nothing to descend")
        lr = 1.0 / row_sq.max()
    lr = _check_lr(lr)
    from helpers.repro import rng as make_rng

    gen = make_rng(seed)
    losses = [_ls_loss(X, y, w)]
    path = [w.copy()] if record_path else None
    converged = diverged = False
    limit = 1e12 * (losses[0] + 1.0)
    e = 0
    for e in range(1, epochs + 1):
        idx = gen.permutation(n) if order == "shuffle" else range(n)
        w_start = w.copy()
        for i in idx:
            xi = X[i]
            w -= lr * (xi @ w - y[i]) * xi
        loss = _ls_loss(X, y, w)
        if not np.isfinite(loss) or loss > limit:
            diverged = True
            losses.append(float("inf") if not np.isfinite(loss) else loss)
            w = w_start
            break
        losses.append(loss)
        if record_path:
            path.append(w.copy())
        if tol > 0 and np.linalg.norm(w - w_start) <= tol * (1.0 + np.linalg.norm(w)):
            converged = True
            break
    return FitResult(w=w, loss=np.asarray(losses), path=None if path is None else np.asarray(path),
                     steps=e, lr=lr, converged=converged, diverged=diverged)


def exponentiated_gradient(X, y, w0, lr, steps, tol=0.0, record_path=False, record_every=1):
    """Exponentiated gradient (unnormalised multiplicative weights) on ``||X w - y||^2 / (2 n)``.

    ``w <- w * exp(-lr * X^T (X w - y) / n)``, from a strictly positive ``w0``
    (Kivinen & Warmuth 1997). This is mirror descent with the potential
    ``psi(w) = sum_i w_i log w_i - w_i``: ``log w_t - log w0`` stays in the row space of ``X``,
    so a limit with ``X w = y`` satisfies the optimality conditions of
    ``argmin_{w > 0, X w = y} D(w || w0)``, ``D(w || w0) = sum_i w_i log(w_i / w0_i) - w_i + w0_i``
    (Gunasekar et al. 2018); compare with :func:`min_kl_solution`. For ``w0 = alpha * 1``
    with small ``alpha`` the limit approaches the minimum-l1 non-negative solution.

    Runs ``steps`` iterations (stopping early when the multiplicative update is below ``tol``
    in max-norm of its log, if ``tol > 0``). Divergence (overflow) is reported as ``diverged``.
    """
    X, y = _check_xy(X, y)
    n, d = X.shape
    w = _check_w0(w0, d, positive=True).copy()
    lr = _check_lr(lr)
    steps = _check_steps(steps)
    record_every = _check_record_every(record_every)
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    r = X @ w - y
    losses = [float(r @ r) / (2 * n)]
    path = [w.copy()] if record_path else None
    converged = diverged = False
    limit = 1e12 * (losses[0] + 1.0)
    k = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, steps + 1):
            expo = (-lr / n) * (X.T @ r)
            w_new = w * np.exp(expo)
            r_new = X @ w_new - y
            loss = float(r_new @ r_new) / (2 * n)
            if not np.isfinite(loss) or loss > limit or not np.all(np.isfinite(w_new)):
                diverged = True
                losses.append(float("inf"))
                break
            w, r = w_new, r_new
            if k % record_every == 0:
                losses.append(loss)
                if record_path:
                    path.append(w.copy())
            if tol > 0 and np.max(np.abs(expo)) <= tol:
                converged = True
                break
    return FitResult(w=w, loss=np.asarray(losses), path=None if path is None else np.asarray(path),
                     steps=k, lr=lr, converged=converged, diverged=diverged)


def min_kl_solution(X, y, w0, generalized=True, tol=1e-12):
    """``argmin_{w > 0, X w = y} D(w || w0)``, solved through the dual with scipy.

    ``D`` is the generalised KL divergence ``sum_i w_i log(w_i / w0_i) - w_i + w0_i`` (the
    Bregman divergence of the negative entropy, which is what exponentiated gradient
    minimises implicitly); ``generalized=False`` uses ``sum_i w_i log(w_i / w0_i)`` instead.
    Stationarity gives ``w = w0 * exp(X^T nu)`` (times ``e^{-1}`` for the plain form), and
    ``nu`` minimises the smooth convex dual ``f(nu) = sum_i w_i(nu) - y . nu``, solved by a
    trust-region Newton method. Raises ``ValueError`` when no positive solution of
    ``X w = y`` exists (the dual is then unbounded).
    """
    from scipy.optimize import minimize

    X, y = _check_xy(X, y)
    w0 = _check_w0(w0, X.shape[1], positive=True)
    shift = 0.0 if generalized else -1.0
    # scale the problem so the dual's curvature is O(1) (the answer does not depend on it)
    s = max(float(np.abs(X).max()), 1e-300)
    Xs, ys = X / s, y / s
    log_w0 = np.log(w0)

    def primal(nu):
        return np.exp(np.clip(log_w0 + Xs.T @ nu + shift, -745.0, 700.0))

    def f(nu):
        return float(primal(nu).sum() - ys @ nu)

    def grad(nu):
        return Xs @ primal(nu) - ys

    def hess(nu):
        return (Xs * primal(nu)) @ Xs.T

    nu = np.zeros(X.shape[0])
    res = minimize(f, nu, jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-14, "maxiter": 2000})
    nu = res.x
    # polish with plain Newton steps (least-squares solves cope with a singular Hessian)
    for _ in range(50):
        g = grad(nu)
        if np.linalg.norm(g) <= tol * (1.0 + np.linalg.norm(ys)):
            break
        step = np.linalg.lstsq(hess(nu), g, rcond=None)[0]
        t, f0 = 1.0, f(nu)
        while t > 1e-12 and not f(nu - t * step) <= f0 - 1e-4 * t * (g @ step):
            t *= 0.5
        if t <= 1e-12:
            break
        nu = nu - t * step
    w = primal(nu)
    resid = np.linalg.norm(X @ w - y) / max(np.linalg.norm(y), 1e-300)
    if not np.all(np.isfinite(w)) or resid > 1e-6:
        raise ValueError(
            f"no strictly positive solution of X w = y was found (relative residual {resid:.2e}); "
            "the KL projection needs y in the image of the positive orthant under X"
        )
    return w


def min_l1_solution(X, y, nonnegative=False) -> np.ndarray:
    """``argmin ||w||_1`` subject to ``X w = y`` (and ``w >= 0`` if ``nonnegative``), by linprog (HiGHS).

    Raises ``ValueError`` when the constraints are infeasible.
    """
    from scipy.optimize import linprog

    X, y = _check_xy(X, y)
    n, d = X.shape
    if nonnegative:
        res = linprog(np.ones(d), A_eq=X, b_eq=y, bounds=[(0, None)] * d, method="highs")
        if res.status != 0:
            raise ValueError(f"no non-negative solution of X w = y: {res.message}")
        return res.x
    # w = u - v with u, v >= 0; at the optimum u and v have disjoint supports
    res = linprog(np.ones(2 * d), A_eq=np.hstack([X, -X]), b_eq=y, bounds=[(0, None)] * (2 * d), method="highs")
    if res.status != 0:
        raise ValueError(f"X w = y has no solution: {res.message}")
    return res.x[:d] - res.x[d:]


def adam_least_squares(X, y, w0=None, lr=1e-2, steps=20_000, betas=(0.9, 0.999), eps=1e-8, decay=True,
                       record_every=1, tol=1e-24):
    """Adam (Kingma & Ba 2015) on ``||X w - y||^2 / (2 n)``.

    The per-coordinate normalisation leaves the row space of ``X``, so Adam's limit is in
    general *not* the solution closest to the start (Wilson et al. 2017). With ``decay=True``
    the step is ``lr / sqrt(1 + t / 100)``, which lets the iterates settle at zero loss
    instead of hovering at a distance set by ``lr``. Stops once the loss falls below
    ``tol`` times its starting value: near zero gradient Adam's normalised steps can kick the
    iterate away again, so there is no point going on.
    """
    X, y = _check_xy(X, y)
    n, d = X.shape
    w = _check_w0(w0, d).copy()
    lr = _check_lr(lr)
    steps = _check_steps(steps)
    record_every = _check_record_every(record_every)
    b1, b2 = betas
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"betas must lie in [0, 1), got {betas}")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    m = np.zeros(d)
    v = np.zeros(d)
    r = X @ w - y
    losses = [float(r @ r) / (2 * n)]
    stop = tol * losses[0]
    diverged = converged = False
    limit = 1e12 * (losses[0] + 1.0)
    k = 0
    for k in range(1, steps + 1):
        g = X.T @ r / n
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat = m / (1 - b1**k)
        vhat = v / (1 - b2**k)
        step = lr / np.sqrt(1.0 + k / 100.0) if decay else lr
        w = w - step * mhat / (np.sqrt(vhat) + eps)
        r = X @ w - y
        loss = float(r @ r) / (2 * n)
        if not np.isfinite(loss) or loss > limit:
            diverged = True
            losses.append(float("inf"))
            break
        if k % record_every == 0 or loss <= stop:
            losses.append(loss)
        if loss <= stop:
            converged = True
            break
    return FitResult(w=w, loss=np.asarray(losses), steps=k, lr=lr, diverged=diverged, converged=converged)


def sign_gd_least_squares(X, y, w0=None, lr=1e-2, steps=20_000, decay=True, record_every=1):
    """Sign gradient descent ``w <- w - lr_t * sign(grad)`` (steepest descent in the l-infinity norm).

    With ``decay=True`` the step is ``lr / sqrt(1 + t / 100)`` so the iterates settle.
    Like Adam, it does not stay in ``w0 + rowspace(X)``.
    """
    X, y = _check_xy(X, y)
    n, d = X.shape
    w = _check_w0(w0, d).copy()
    lr = _check_lr(lr)
    steps = _check_steps(steps)
    record_every = _check_record_every(record_every)
    r = X @ w - y
    losses = [float(r @ r) / (2 * n)]
    k = 0
    for k in range(1, steps + 1):
        g = X.T @ r / n
        step = lr / np.sqrt(1.0 + k / 100.0) if decay else lr
        w = w - step * np.sign(g)
        r = X @ w - y
        if k % record_every == 0:
            losses.append(float(r @ r) / (2 * n))
    return FitResult(w=w, loss=np.asarray(losses), steps=k, lr=lr)


# ---------------------------------------------------------------------------------------------
# Chapter 7 (Telgarsky): the hard-margin direction and gradient descent on the logistic loss.
# ---------------------------------------------------------------------------------------------


def _check_labelled_data(X, y):
    """Validate a design matrix ``X`` (n x d) and labels ``y`` in {-1, +1}; return float copies."""
    import numpy as np

    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D array (n samples x d features), got shape {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be a 1-D array with one label per row of X ({X.shape[0]}), got shape {y.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite entries")
    try:
        yf = y.astype(float)
    except (TypeError, ValueError):
        raise ValueError("labels y must be -1 or +1") from None
    if not np.all((yf == 1.0) | (yf == -1.0)):
        raise ValueError(f"labels y must be -1 or +1, got values {np.unique(y)[:5]}")
    return X, yf


def max_margin_direction(X, y, return_margin=False):
    """Unit vector of the hard-margin linear SVM through the origin (no bias term).

    ``argmax_{||u|| = 1} min_i y_i <x_i, u>``, the direction that gradient descent on the
    logistic loss converges to on separable data (Soudry et al. 2018; Ji & Telgarsky 2018).
    Solved through the dual, the min-norm point of the convex hull of ``z_i = y_i x_i``, as a
    nonnegative least-squares problem (scipy's ``nnls``), then polished on the support set by
    the exact KKT equations.
    With ``return_margin=True`` also returns the margin ``gamma = min_i y_i <x_i, u>``.

    Raises ``ValueError`` when the data cannot be separated by a hyperplane through the
    origin (checked with a linear program) or the labels are not in {-1, +1}.
    """
    import numpy as np
    from scipy.optimize import linprog, nnls

    X, y = _check_labelled_data(X, y)
    Z = y[:, None] * X
    n, d = Z.shape
    # Feasibility of Z w >= 1 is exactly strict separability through the origin.
    lp = linprog(np.zeros(d), A_ub=-Z, b_ub=-np.ones(n), bounds=[(None, None)] * d, method="highs")
    if lp.status != 0:
        raise ValueError(
            "the data are not linearly separable by a hyperplane through the origin "
            "(no w with y_i <x_i, w> > 0 for all i); the max-margin direction is undefined"
        )
    # Scale so that the dual variables are O(1): the solution direction is unchanged.
    scale = np.max(np.linalg.norm(Z, axis=1))
    Zs = Z / scale
    # The dual is the min-norm point of conv{z_i} (a = t * lam, sum(lam) = 1). The
    # nonnegative least-squares problem min_{a >= 0} ||Z^T a||^2 + (sum(a) - 1)^2 has value
    # q / (1 + q) along each ray, with q = ||Z^T lam||^2, so it solves that problem exactly
    # (Lawson-Hanson active set, no tolerance to tune).
    A = np.vstack([Zs.T, np.ones((1, n))])
    rhs = np.concatenate([np.zeros(d), [1.0]])
    a, _ = nnls(A, rhs, maxiter=50 * (n + d))
    best = Zs.T @ a
    # Polish: on the support set S the optimum solves min ||w|| s.t. z_i.w = 1 (i in S).
    tol_sv = 1e-9 * max(a.max(), 1e-300)
    support = a > tol_sv
    if support.any():
        ZS = Zs[support]
        coef, *_ = np.linalg.lstsq(ZS @ ZS.T, np.ones(support.sum()), rcond=None)
        w_pol = ZS.T @ coef
        margins = Zs @ w_pol
        if np.all(np.isfinite(w_pol)) and np.all(coef >= -1e-9) and margins.min() >= 1 - 1e-9:
            best = w_pol
    norm = np.linalg.norm(best)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("the SVM solver failed; check that X has no degenerate rows")
    u = best / norm
    if return_margin:
        return u, float((Z @ u).min())
    return u


@dataclass
class LogisticPath:
    """What :func:`gd_logistic` records at its checkpoints (``steps``, log-spaced).

    ``w`` (k x d) iterates, ``loss`` the logistic loss (summed, or averaged with
    ``average=True``), ``margin`` the normalized margin ``min_i y_i <x_i, w> / ||w||``,
    ``angle`` the angle (radians) between ``w`` and the SVM direction ``svm`` (NaN when the
    data are not separable, then ``svm`` is ``None``). ``diverged_at`` is the first step with
    a non-finite loss (``None`` when the run stayed finite).
    """

    steps: np.ndarray
    w: np.ndarray
    loss: np.ndarray
    margin: np.ndarray
    angle: np.ndarray
    svm: np.ndarray | None
    lr: float
    average: bool
    diverged_at: int | None = None

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None


def log_checkpoints(steps, record=60):
    """Sorted unique step indices in [0, steps], roughly log-spaced, always holding 0 and steps.

    ``record`` is the number of points (int >= 2) or an explicit sequence of step indices.
    """
    import numpy as np

    steps = int(steps)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if np.isscalar(record):
        if int(record) < 2:
            raise ValueError(f"record must be >= 2 checkpoints, got {record}")
        pts = np.unique(np.round(np.geomspace(1, steps + 1, int(record)) - 1).astype(int)) if steps > 0 else np.array([0])
    else:
        pts = np.unique(np.asarray(record, dtype=int))
        if pts.size == 0 or pts.min() < 0 or pts.max() > steps:
            raise ValueError(f"explicit checkpoints must lie in [0, steps={steps}]")
    return np.unique(np.concatenate([[0], pts, [steps]]))


def logistic_loss(w, X, y, average=False):
    """Logistic loss ``sum_i log(1 + exp(-y_i <x_i, w>))`` (mean with ``average=True``), stably."""
    import numpy as np

    m = y * (np.asarray(X, dtype=float) @ np.asarray(w, dtype=float))
    total = np.logaddexp(0.0, -m).sum()
    return total / len(y) if average else total


def gd_logistic(X, y, lr, steps, w0=None, record=60, average=False, svm="auto"):
    """Gradient descent on the logistic loss of a linear predictor, recorded at log-spaced steps.

    ``w_{t+1} = w_t - lr * grad L(w_t)`` with ``L(w) = sum_i log(1 + exp(-y_i <x_i, w>))``
    (Soudry et al. 2018 use the sum; ``average=True`` divides by n as Ji & Telgarsky 2018).
    On separable data the direction ``w_t / ||w_t||`` tends to :func:`max_margin_direction`;
    otherwise the iterates follow a ray with a fixed offset (Ji & Telgarsky 2018).

    ``record``: number of log-spaced checkpoints or explicit step indices. ``svm``: ``"auto"``
    (computed when the data are separable), a direction to measure angles against, or ``None``.
    Returns a :class:`LogisticPath`; a non-finite loss stops the run and sets ``diverged_at``.
    """
    import numpy as np
    from scipy.special import expit

    X, y = _check_labelled_data(X, y)
    n, d = X.shape
    if not (np.isscalar(lr) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    w = np.zeros(d) if w0 is None else np.array(w0, dtype=float).reshape(-1)
    if w.shape != (d,) or not np.all(np.isfinite(w)):
        raise ValueError(f"w0 must be a finite vector of length d={d}")
    if isinstance(svm, str):
        if svm != "auto":
            raise ValueError("svm must be 'auto', None or a direction vector")
        try:
            svm = max_margin_direction(X, y)
        except ValueError:
            svm = None
    elif svm is not None:
        svm = np.asarray(svm, dtype=float).reshape(-1)
        if svm.shape != (d,) or not np.linalg.norm(svm) > 0:
            raise ValueError(f"svm must be a nonzero vector of length d={d}")
        svm = svm / np.linalg.norm(svm)
    checkpoints = log_checkpoints(int(steps), record)
    Z = y[:, None] * X
    ZT = np.ascontiguousarray(Z.T)
    eta = lr / n if average else lr
    out_w, out_loss = [], []
    diverged_at = None
    t = 0
    for c in checkpoints:
        while t < c:  # the hot loop: four small numpy calls per step
            w = w + eta * (ZT @ expit(-(Z @ w)))
            t += 1
        loss = np.logaddexp(0.0, -(Z @ w)).sum() / (n if average else 1)
        if not np.isfinite(loss) or not np.all(np.isfinite(w)):
            diverged_at = int(t)
            break
        out_w.append(w.copy())
        out_loss.append(loss)
    W = np.array(out_w).reshape(-1, d)
    norms = np.linalg.norm(W, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        margin = np.where(norms > 0, (W @ Z.T).min(axis=1) / np.where(norms > 0, norms, 1), np.nan)
        if svm is not None:
            cos = np.clip((W @ svm) / np.where(norms > 0, norms, 1), -1.0, 1.0)
            angle = np.where(norms > 0, np.arccos(cos), np.nan)
        else:
            angle = np.full(len(W), np.nan)
    return LogisticPath(steps=checkpoints[: len(W)], w=W, loss=np.array(out_loss), margin=margin,
                        angle=angle, svm=svm, lr=float(lr), average=bool(average), diverged_at=diverged_at)


def soudry_offset(X, y, lr, average=False, tol=1e-9):
    """The offset ``w_tilde`` in ``w(t) = w_hat ln t + w_tilde + o(1)`` for GD on separable data.

    Soudry et al. (2018, Thm. 3): with ``w_hat`` the max-margin vector scaled to margin 1 and
    ``S`` its support vectors (``y_i <x_i, w_hat> = 1``), ``w_tilde`` solves
    ``sum_{i in S} eta exp(-z_i . w_tilde) z_i = w_hat`` (``z_i = y_i x_i``, ``eta`` the step
    on the summed loss). This is the stationarity condition of the convex function
    ``v -> sum_{i in S} eta exp(-z_i . v) + <w_hat, v>``, minimised here over ``span{z_i : i in S}``.
    The formula describes the limit when the support vectors span the space (then it is
    unique); otherwise only the component in their span is predicted.
    Returns ``(w_hat, w_tilde, support_mask)``.
    """
    import numpy as np
    from scipy.optimize import minimize

    X, y = _check_labelled_data(X, y)
    if not (np.isscalar(lr) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    u, gamma = max_margin_direction(X, y, return_margin=True)
    w_hat = u / gamma
    Z = y[:, None] * X
    eta = lr / len(y) if average else lr
    support = Z @ w_hat <= 1 + 1e-7
    ZS = Z[support]
    # Work in an orthonormal basis B of span(ZS) so the problem is strictly convex.
    U, s, _ = np.linalg.svd(ZS.T, full_matrices=False)
    B = U[:, s > 1e-10 * s.max()]
    A = ZS @ B
    b = B.T @ w_hat

    def fun(c):
        e = eta * np.exp(-(A @ c))
        return e.sum() + b @ c, b - A.T @ e

    res = minimize(fun, np.zeros(B.shape[1]), jac=True, method="BFGS", options={"gtol": tol, "maxiter": 10000})
    return w_hat, B @ res.x, support


@dataclass
class NonseparableSplit:
    """Ji & Telgarsky's (2018) split of a data set for logistic regression.

    ``tight``: the points that every direction with ``y_i <x_i, u> >= 0`` for all i leaves at
    margin zero (their span ``S`` carries a strongly convex part of the risk); ``offset``: the
    minimiser over ``S`` of ``sum_{i tight} log(1 + exp(-y_i <x_i, v>))``, where GD's projection
    onto ``S`` converges; ``w_hat``: the margin-1 max-margin vector of the other points
    projected onto ``S``'s orthogonal complement (``None`` when every point is tight), along
    which the iterates grow like ``ln t``; ``basis``: an orthonormal basis of ``S`` (columns).
    """

    tight: np.ndarray
    basis: np.ndarray
    offset: np.ndarray
    w_hat: np.ndarray | None


def nonseparable_split(X, y, tol=1e-9):
    """Split logistic regression's data into a separable part and a strongly convex part.

    Following Ji & Telgarsky (2018): a linear program finds a direction ``u`` with
    ``z_i . u >= 0`` for all ``z_i = y_i x_i`` and as many strict inequalities as possible;
    the remaining points are tight. Returns a :class:`NonseparableSplit`; on separable data
    no point is tight and ``offset`` is zero; on data with no separable part ``w_hat`` is None.
    """
    import numpy as np
    from scipy.optimize import linprog, minimize

    X, y = _check_labelled_data(X, y)
    Z = y[:, None] * X
    n, d = Z.shape
    # maximise sum_i s_i with 0 <= s_i <= 1, s_i <= z_i . u, Z u >= 0; variables (u, s)
    scale = np.max(np.linalg.norm(Z, axis=1))
    Zs = Z / (scale if scale > 0 else 1.0)
    c = np.concatenate([np.zeros(d), -np.ones(n)])
    A1 = np.hstack([-Zs, np.eye(n)])            # s_i - z_i.u <= 0
    A2 = np.hstack([-Zs, np.zeros((n, n))])     # -z_i.u <= 0
    lp = linprog(c, A_ub=np.vstack([A1, A2]), b_ub=np.zeros(2 * n),
                 bounds=[(-1e6, 1e6)] * d + [(0.0, 1.0)] * n, method="highs")
    if lp.status != 0:
        raise ValueError(f"the linear program failed: {lp.message}")
    s = lp.x[d:]
    tight = s <= 1e-7
    ZT = Z[tight]
    if tight.any():
        U, sv, _ = np.linalg.svd(ZT.T, full_matrices=False)
        keep = sv > 1e-10 * max(sv.max(), 1e-300)
        B = U[:, keep]
    else:
        B = np.zeros((d, 0))
    offset = np.zeros(d)
    if B.shape[1] > 0:
        A = ZT @ B

        def fun(cv):
            m = A @ cv
            return np.logaddexp(0.0, -m).sum(), -(A.T @ (1.0 / (1.0 + np.exp(np.clip(m, -700, 700)))))

        res = minimize(fun, np.zeros(B.shape[1]), jac=True, method="BFGS", options={"gtol": tol, "maxiter": 10000})
        offset = B @ res.x
    w_hat = None
    if (~tight).any():
        P = np.eye(d) - B @ B.T
        Xp = X[~tight] @ P
        u, gamma = max_margin_direction(Xp, y[~tight], return_margin=True)
        w_hat = u / gamma
    return NonseparableSplit(tight=tight, basis=B, offset=offset, w_hat=w_hat)


# ----------------------------------------------------------------------------- chapter 1: pictures
@dataclass
class PlanePicture:
    """A 2-D underdetermined problem ``a . w = b`` and one optimiser's path from ``w0``."""

    a: np.ndarray
    b: float
    w0: np.ndarray
    algorithm: str
    path: np.ndarray | None
    closest_l2: np.ndarray
    closest_kl: np.ndarray | None
    message: str = ""


def plane_picture(start_x=0.0, start_y=0.0, algorithm="GD", a=(1.0, 2.0), b=2.0, steps=60):
    """GD or EG on one equation ``a . w = b`` in two unknowns, from ``w0 = (start_x, start_y)``.

    The solution set is a line. GD (step ``0.3 / L``) moves along ``a`` and stops at the point
    of the line closest to ``w0`` in Euclidean distance; EG (from a positive ``w0``) curves and
    stops at the point closest in KL divergence. EG from a start with a coordinate ``<= 0`` is
    undefined: the picture then carries a ``message`` instead of a path.
    """
    if algorithm not in ("GD", "EG"):
        raise ValueError(f"algorithm must be 'GD' or 'EG', got {algorithm!r}")
    X = np.asarray(a, dtype=float).reshape(1, 2)
    y = np.array([float(b)])
    w0 = np.array([start_x, start_y], dtype=float)
    closest_l2 = min_l2_solution(X, y, w0)
    if algorithm == "GD":
        res = gd_least_squares(X, y, w0, lr=0.3 / smoothness(X), steps=steps, tol=0, record_path=True)
        return PlanePicture(X[0], float(b), w0, "GD", res.path, closest_l2, None)
    if not np.all(w0 > 0):
        return PlanePicture(X[0], float(b), w0, "EG", None, closest_l2, None,
                            "exponentiated gradient needs a start with positive coordinates")
    lr = 0.3 / (smoothness(X) * max(float(np.max(w0)), float(b) / float(np.min(np.abs(X[0])))))
    res = exponentiated_gradient(X, y, w0, lr=lr, steps=4 * steps, record_path=True, record_every=4)
    return PlanePicture(X[0], float(b), w0, "EG", res.path, closest_l2, min_kl_solution(X, y, w0))


def plot_plane_picture(pic: PlanePicture):
    """The solution line, the loss contours, the path and the closest points (returns a Figure)."""
    from matplotlib.figure import Figure

    from helpers.plotting import COLORS

    # fixed axes (no constrained layout): a widget frame must render in well under 100 ms
    fig = Figure(figsize=(6.4, 3.9))
    ax = fig.add_axes((0.08, 0.12, 0.5, 0.82))
    lim = (-2.6, 3.6)
    t = np.linspace(-10, 10, 2)
    base = pic.a * pic.b / (pic.a @ pic.a)
    direction = np.array([-pic.a[1], pic.a[0]])
    line = base[None, :] + t[:, None] * direction[None, :]
    # the loss's level sets are lines parallel to the solution line (cheaper than contour)
    unit = pic.a / (pic.a @ pic.a)
    for level in (-3, -2, -1, 1, 2, 3):
        shifted = line + 1.5 * level * unit * np.sqrt(pic.a @ pic.a)
        ax.plot(shifted[:, 0], shifted[:, 1], color="#cccccc", lw=0.6)
    ax.plot(line[:, 0], line[:, 1], color=COLORS["theory"], lw=1.2, label="zero-loss solutions")
    ax.plot(*base, "s", color=COLORS["truth"], ms=6, label="min-norm solution")
    ax.plot(*pic.w0, "o", color="k", ms=6, label="start $w_0$")
    if pic.message:
        ax.text(0.5, 0.04, pic.message, transform=ax.transAxes, ha="center", color="#b00020", fontsize=9)
    else:
        color = COLORS["gd"] if pic.algorithm == "GD" else COLORS["other"]
        ax.plot(pic.path[:, 0], pic.path[:, 1], ".-", color=color, ms=3, lw=1, label=f"{pic.algorithm} path")
        ax.plot(*pic.closest_l2, "x", color=COLORS["gd"], ms=9, mew=2, label="closest to $w_0$ (Euclidean)")
        if pic.closest_kl is not None:
            ax.plot(*pic.closest_kl, "+", color=COLORS["other"], ms=11, mew=2, label="closest to $w_0$ (KL)")
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$w_1$")
    ax.set_ylabel("$w_2$")
    ax.legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), fontsize=8)
    return fig


def plane_widget():
    """Spec factory: move the start of GD / EG on ``w1 + 2 w2 = 2`` (chapter 1)."""
    from helpers import widgets

    return widgets.Spec(
        compute=plane_picture,
        plot=plot_plane_picture,
        grid={"start_x": [-2.0, -1.0, 0.0, 1.0, 2.0], "start_y": [-1.0, 0.0, 1.0, 2.0], "algorithm": ["GD", "EG"]},
        default={"start_x": 0.0, "start_y": 0.0, "algorithm": "GD"},
        labels={"start_x": "start w1", "start_y": "start w2", "algorithm": "algorithm"},
        title="Where does the optimiser land? Move the start point.",
    )


def _register_plane_widget():
    from helpers import widgets

    widgets.register("ch01-least-squares")(plane_widget)


_register_plane_widget()


def plot_distance_curves(curves: dict, ylabel="distance to the predicted limit"):
    """Semilog curves ``label -> array of distances per step`` (chapter 1's convergence figure)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.0), layout="constrained")
    ax = fig.add_subplot()
    for label, dist in curves.items():
        dist = np.asarray(dist, dtype=float)
        ax.semilogy(np.arange(len(dist)), np.maximum(dist, 1e-17), label=label)
    ax.set_xlabel("iteration (GD) / epoch (SGD)")
    ax.set_ylabel(ylabel)
    ax.legend()
    return fig


def plot_sparse_recovery(truth, solutions: dict, alphas, kl_to_l1, eg_to_l1=None):
    """Left: the coefficients of the sparse truth and of each solution in ``solutions``.
    Right: distance of the KL projection (and of EG's final iterate) to the min-l1 solution vs ``alpha``."""
    from matplotlib.figure import Figure

    from helpers.plotting import COLORS

    fig = Figure(figsize=(9.0, 3.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
    idx = np.arange(len(truth))
    ax1.bar(idx, truth, color=COLORS["truth"], alpha=0.35, width=1.0, label="sparse truth")
    for (label, w), marker, color in zip(solutions.items(), ["o", "x", "+"], [COLORS["gd"], COLORS["other"], "#9467bd"]):
        ax1.plot(idx, w, marker, ms=4, color=color, label=label)
    ax1.axhline(0, color="k", lw=0.5)
    ax1.set_xlabel("coordinate $i$")
    ax1.set_ylabel("$w_i$")
    ax1.legend(fontsize=8)
    ax2.loglog(alphas, kl_to_l1, "o-", color=COLORS["other"], label="KL projection of $\\alpha\\mathbf{1}$")
    if eg_to_l1 is not None:
        ax2.loglog(alphas, eg_to_l1, "x--", color="#9467bd", label="EG after a fixed budget")
    ax2.set_xlabel(r"start scale $\alpha$")
    ax2.set_ylabel(r"rel. distance to min-$\ell_1$")
    ax2.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------
# Chapter 8 (Gunasekar): Fourier-l1 margins, factorized matrix sensing, margins of other geometries.
# ---------------------------------------------------------------------------------------------


def fourier_l1_norm(beta):
    """``||F beta||_1``: the sum of the moduli of the unitary DFT of ``beta`` (``F^H F = I``)."""
    beta = np.asarray(beta, dtype=float)
    if beta.ndim != 1 or beta.size == 0:
        raise ValueError(f"beta must be a non-empty vector, got shape {beta.shape}")
    return float(np.abs(np.fft.fft(beta)).sum() / np.sqrt(beta.size))


def fourier_l1_max_margin(X, y):
    """``argmin ||F beta||_1  s.t.  y_n <x_n, beta> >= 1`` with the unitary DFT ``F``.

    The predictor that gradient descent on a depth-2 full-width linear convnet converges to in
    direction (Gunasekar, Lee, Soudry & Srebro 2018, NeurIPS). ``F beta`` is complex, so the
    objective is a sum of 2-norms of (real, imaginary) pairs: a second-order cone program,
    solved with cvxpy (Clarabel). Raises ``ValueError`` when the data are not separable by a
    hyperplane through the origin.
    """
    import cvxpy as cp

    X, y = _check_labelled_data(X, y)
    n, D = X.shape
    k = np.arange(D)
    angle = 2 * np.pi * np.outer(k, k) / D
    C, S = np.cos(angle) / np.sqrt(D), -np.sin(angle) / np.sqrt(D)
    Z = y[:, None] * X
    scale = float(np.abs(Z).max())  # margins of O(1) keep the solver's tolerances meaningful
    beta = cp.Variable(D)
    objective = cp.Minimize(cp.sum(cp.norm(cp.vstack([C @ beta, S @ beta]), 2, axis=0)))
    problem = cp.Problem(objective, [(Z / scale) @ beta >= 1])
    problem.solve(solver="CLARABEL")
    if problem.status not in ("optimal", "optimal_inaccurate") or beta.value is None:
        raise ValueError(f"the data are not separable through the origin (solver status {problem.status!r})")
    return np.asarray(beta.value, dtype=float) / scale


def max_l1_margin(X, y):
    """``(w, gamma)``: ``argmax_{||w||_1 <= 1} min_n y_n <x_n, w>`` and its margin, by linprog (HiGHS).

    The direction steepest descent in the l1 norm (coordinate descent) converges to on the
    exponential loss (Gunasekar, Lee, Soudry & Srebro 2018, ICML). ``w = u - v`` with
    ``u, v >= 0``; variables ``(u, v, gamma)``, maximise ``gamma``.
    """
    from scipy.optimize import linprog

    X, y = _check_labelled_data(X, y)
    Z = y[:, None] * X
    n, d = Z.shape
    c = np.zeros(2 * d + 1)
    c[-1] = -1.0
    A_ub = np.vstack([np.hstack([-Z, Z, np.ones((n, 1))]), np.concatenate([np.ones(2 * d), [0.0]])[None, :]])
    b_ub = np.concatenate([np.zeros(n), [1.0]])
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=[(0, None)] * (2 * d) + [(None, None)], method="highs")
    if res.status != 0 or not -res.fun > 0:
        raise ValueError("the data are not separable through the origin: the best l1 margin is not positive")
    w = res.x[:d] - res.x[d:2 * d]
    return w, float(-res.fun)


@dataclass
class MarginPath:
    """A run of a first-order method on the exponential loss of a linear predictor.

    ``steps`` checkpoints; ``w`` (k x d) iterates; ``loss`` the average exponential loss (may
    underflow to 0 late in a run); ``margin`` the margin ``min_n y_n <x_n, w> / ||w||`` in the
    run's norm (``norm``: 2 or 1); ``gamma`` the best margin in that norm and ``gap`` =
    ``gamma - margin``. ``diverged_at``: first checkpoint with non-finite iterates, else None.
    """

    steps: np.ndarray
    w: np.ndarray
    loss: np.ndarray
    margin: np.ndarray
    gap: np.ndarray
    gamma: float
    norm: int
    lr: float
    normalized: bool
    diverged_at: int | None = None


def _exp_margin_descent(X, y, steps, lr, normalized, geometry, record):
    from scipy.special import logsumexp, softmax

    X, y = _check_labelled_data(X, y)
    lr = _check_lr(lr)
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    Z = y[:, None] * X
    n, d = Z.shape
    if geometry == 2:
        gamma = max_margin_direction(X, y, return_margin=True)[1]
    else:
        gamma = max_l1_margin(X, y)[1]
    checkpoints = log_checkpoints(int(steps), record)
    w = np.zeros(d)
    out_w, out_loss = [], []
    diverged_at, t = None, 0
    with np.errstate(over="ignore", invalid="ignore"):
        for c in checkpoints:
            while t < c:
                m = Z @ w
                if normalized:
                    # grad L / L = -sum_i softmax(-m)_i z_i, computed stably at any loss level
                    direction = Z.T @ softmax(-m)
                else:
                    direction = Z.T @ np.exp(-m) / n
                if geometry == 2:
                    w = w + lr * direction
                else:
                    # steepest descent in l1: move the coordinate of largest |gradient| by
                    # lr * ||gradient||_inf (the dual-norm scaling): coordinate descent
                    j = int(np.argmax(np.abs(direction)))
                    w[j] += lr * direction[j]
                t += 1
            m = Z @ w
            if not np.all(np.isfinite(w)):
                diverged_at = int(t)
                break
            out_w.append(w.copy())
            out_loss.append(float(np.exp(logsumexp(-m) - np.log(n))))
    W = np.array(out_w).reshape(-1, d)
    norms = np.linalg.norm(W, ord=geometry, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        margin = np.where(norms > 0, (W @ Z.T).min(axis=1) / np.where(norms > 0, norms, 1.0), np.nan)
    return MarginPath(steps=checkpoints[: len(W)], w=W, loss=np.array(out_loss), margin=margin, gap=gamma - margin,
                      gamma=float(gamma), norm=geometry, lr=lr, normalized=bool(normalized), diverged_at=diverged_at)


def normalized_gd_margin(X, y, steps, lr=1.0, normalized=True, record=40):
    """Gradient descent on the exponential loss of a linear predictor, fixed or loss-normalized steps.

    ``normalized=True`` uses ``eta_t = lr / L(w_t)`` (Nacson, Lee, Gunasekar, Savarese, Srebro &
    Soudry 2019): the step grows as the loss vanishes, ``||w_t||`` grows linearly and the
    margin gap closes like ``log(t) / t`` instead of ``1 / log t`` for a fixed step
    (``normalized=False``: ``w <- w - lr grad L(w)``, ``L`` the average loss). The normalized
    update is computed as a softmax so it stays finite when ``L`` underflows.
    Returns a :class:`MarginPath` with the l2 margin and its gap to the SVM margin.
    """
    return _exp_margin_descent(X, y, steps, lr, normalized, 2, record)


def coordinate_descent_margin(X, y, steps, lr=0.5, normalized=True, record=40):
    """Steepest descent in the l1 norm (greedy coordinate descent) on the exponential loss.

    Each step changes the single coordinate with the largest partial derivative, by
    ``lr * ||grad||_inf`` (with ``grad`` divided by the loss if ``normalized``): AdaBoost-like
    updates. Gunasekar, Lee, Soudry & Srebro (2018, ICML) show the direction tends to the
    max-l1-margin predictor (:func:`max_l1_margin`) for small enough steps. Returns a
    :class:`MarginPath` with the l1 margin ``min_n y_n <x_n, w> / ||w||_1`` and its gap.
    """
    return _exp_margin_descent(X, y, steps, lr, normalized, 1, record)


def _check_sensing(A, b):
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    if A.ndim != 3 or A.shape[1] != A.shape[2] or A.shape[0] < 1 or A.shape[1] < 1:
        raise ValueError(f"A must be an array of m square measurement matrices, shape (m, n, n); got {A.shape}")
    if b.shape != (A.shape[0],):
        raise ValueError(f"b must have one entry per measurement matrix ({A.shape[0]},), got {b.shape}")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
        raise ValueError("A and b must be finite")
    # <A, X> for symmetric X only sees the symmetric part of A
    return 0.5 * (A + A.transpose(0, 2, 1)), b


@dataclass
class SensingResult:
    """GD on a factorized matrix-sensing loss: ``X = U U^T`` at the end, ``loss`` per recorded
    step (entry 0 is the start), ``steps`` run, ``converged`` (loss below ``tol``), ``diverged``."""

    X: np.ndarray
    U: np.ndarray
    loss: np.ndarray
    steps: int
    converged: bool
    diverged: bool


def factorized_sensing_gd(A, b, init_scale, lr, steps, U0=None, tol=1e-14, record_every=100):
    """Gradient descent on ``f(U) = sum_i (<A_i, U U^T> - b_i)^2 / (2 m)`` with ``U`` full (n x n).

    Gunasekar, Woodworth, Bhojanapalli, Neyshabur & Srebro (2017): starting from
    ``U0 = init_scale * I`` (or ``init_scale * U0`` for a given ``U0``) with a small scale, the
    factorized iterates tend to the minimum-nuclear-norm PSD solution when the ``A_i`` commute
    (they prove it; :func:`min_nuclear_norm` is the reference) and for RIP measurements with a
    low-rank truth (Li, Ma & Zhang 2018); in general they need not (Arora et al. 2019; Li, Luo &
    Lyu 2021). Stops when the loss is below ``tol``; divergence is reported, never raised.
    """
    A, b = _check_sensing(A, b)
    m, n, _ = A.shape
    if not (np.isscalar(init_scale) and np.isfinite(init_scale) and init_scale > 0):
        raise ValueError(f"init_scale must be a positive finite number, got {init_scale!r}")
    lr = _check_lr(lr)
    steps = _check_steps(steps)
    record_every = _check_record_every(record_every)
    U = init_scale * (np.eye(n) if U0 is None else np.asarray(U0, dtype=float))
    if U.shape != (n, n) or not np.all(np.isfinite(U)):
        raise ValueError(f"U0 must be a finite ({n}, {n}) array")
    Aflat = A.reshape(m, n * n)
    r = Aflat @ (U @ U.T).ravel() - b
    losses = [float(r @ r) / (2 * m)]
    converged = diverged = False
    k = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, steps + 1):
            G = (r @ Aflat).reshape(n, n)
            U = U - lr * (2.0 / m) * (G @ U)
            r = Aflat @ (U @ U.T).ravel() - b
            loss = float(r @ r) / (2 * m)
            if not np.isfinite(loss) or loss > 1e12 * (losses[0] + 1.0):
                diverged = True
                losses.append(float("inf"))
                break
            if k % record_every == 0:
                losses.append(loss)
            if loss < tol:
                converged = True
                losses.append(loss)
                break
    return SensingResult(X=U @ U.T, U=U, loss=np.asarray(losses), steps=k, converged=converged, diverged=diverged)


def min_nuclear_norm(A, b):
    """``argmin tr(X)  s.t.  X PSD, <A_i, X> = b_i``: the minimum-nuclear-norm PSD solution (cvxpy SDP).

    On PSD matrices the nuclear norm is the trace. The minimiser need not be unique (only the
    value is); this returns the solver's. Raises ``ValueError`` when no PSD solution exists.
    """
    import cvxpy as cp

    A, b = _check_sensing(A, b)
    m, n, _ = A.shape
    X = cp.Variable((n, n), PSD=True)
    constraints = [cp.trace(A[i] @ X) == b[i] for i in range(m)]
    problem = cp.Problem(cp.Minimize(cp.trace(X)), constraints)
    problem.solve(solver="CLARABEL")
    if problem.status not in ("optimal", "optimal_inaccurate") or X.value is None:
        raise ValueError(f"no PSD matrix satisfies the measurements (solver status {problem.status!r})")
    Xv = np.asarray(X.value, dtype=float)
    return 0.5 * (Xv + Xv.T)


def commuting_sensing(n, m, seed=0):
    """Commuting measurements ``A_i = Q diag(d_i) Q^T`` (one random orthogonal ``Q``, Gaussian ``d_i``)
    of a PSD truth ``Q diag(x) Q^T`` with ``x`` uniform in [0, 1]. Returns ``(A, b, truth, Q, Dg)``.

    In the common eigenbasis the problem is the non-negative vector problem ``Dg x = b``; the
    minimum-trace PSD solutions share the diagonal of the minimum-l1 non-negative solution.
    """
    from scipy.stats import ortho_group

    if int(n) != n or int(m) != m or n < 2 or m < 1:
        raise ValueError(f"n >= 2 and m >= 1 must be integers, got n={n!r}, m={m!r}")
    rng = np.random.default_rng(seed)
    Q = ortho_group.rvs(int(n), random_state=rng)
    Dg = rng.standard_normal((int(m), int(n)))
    x = rng.uniform(size=int(n))
    A = np.einsum("ij,kj,lj->kil", Q, Dg, Q)
    return A, Dg @ x, Q @ np.diag(x) @ Q.T, Q, Dg


def gaussian_sensing(n, m, seed=0):
    """Symmetric Gaussian measurements of a rank-one PSD truth ``u u^T / ||u||^2``: ``(A, b, truth)``."""
    if int(n) != n or int(m) != m or n < 1 or m < 1:
        raise ValueError(f"n and m must be positive integers, got n={n!r}, m={m!r}")
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((int(m), int(n), int(n)))
    A = 0.5 * (G + G.transpose(0, 2, 1))
    u = rng.standard_normal(int(n))
    truth = np.outer(u, u) / (u @ u)
    return A, np.einsum("kij,ij->k", A, truth), truth


def sensing_lr(A, fraction=0.2):
    """A safe step for :func:`factorized_sensing_gd` near ``||X|| ~ 1``: ``fraction * m / ||A||_op^2``."""
    A, _ = _check_sensing(A, np.zeros(np.shape(A)[0]))
    m = A.shape[0]
    return float(fraction * m / np.linalg.norm(A.reshape(m, -1), 2) ** 2)
