"""Linear networks trained by gradient descent: the predictor is linear, the parametrization is not.

A linear network maps ``x`` to ``<beta(theta), x>`` where ``beta`` is a multilinear function of
the layers ``theta``. Gradient descent on the layers then follows a different path from gradient
descent on ``beta`` itself, and where it ends is the question of chapters 7 and 8.

Layout (so that new parametrizations slot in):

- :func:`train_linear_parametrization` is the one training loop. A parametrization is a list
  of arrays plus two functions: ``forward(params) -> beta`` and ``backward(params, g) -> grads``
  (the chain rule for ``g = dL/dbeta``). It records ``beta`` and the layers at log-spaced steps.
- :func:`deep_linear_gd` (chapter 7, Ji & Telgarsky 2019): fully connected ``x -> W_L ... W_1 x``.
  Chapter 8 adds a convolutional parametrization the same way.
- Diagnostics of Ji & Telgarsky's alignment theorem: :func:`rank1_ratio`, :func:`alignment`,
  :func:`frobenius_norms`.
- Data: :func:`soudry_data`, :func:`random_separable`, :func:`two_blobs`.
- Plots (``plot_*``) take results and return Figures; the chapter-7 widget is registered as
  ``ch07-deep-linear``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from helpers import widgets
from helpers.implicit_bias import _check_labelled_data, log_checkpoints, max_margin_direction

LOSSES = ("logistic", "exp")


# ----------------------------------------------------------------------------- the training loop
@dataclass
class LinearNetPath:
    """A gradient-descent run of a linear network, recorded at the steps ``steps``.

    ``layers[k]`` is the list of layer arrays at ``steps[k]``; ``beta`` (k x d) the end-to-end
    linear predictor; ``loss`` the average loss; ``margin`` the normalized margin
    ``min_i y_i <x_i, beta> / ||beta||``; ``angle`` the angle (radians) between ``beta`` and
    the max-margin direction ``svm`` (NaN when the data are not separable). ``diverged_at``
    is the first recorded step whose loss or layers were not finite (``None`` if none).
    """

    steps: np.ndarray
    layers: list
    beta: np.ndarray
    loss: np.ndarray
    margin: np.ndarray
    angle: np.ndarray
    svm: np.ndarray | None
    lr: float
    diverged_at: int | None = None

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def final_layers(self) -> list:
        return self.layers[-1]


def _loss_and_grad(beta, Z, loss):
    """Average loss of margins ``Z @ beta`` and its gradient in ``beta``."""
    m = Z @ beta
    if loss == "logistic":
        value = np.logaddexp(0.0, -m).mean()
        weights = 0.5 * (1.0 - np.tanh(0.5 * m))  # = sigmoid(-m), stable for large |m|
    else:
        with np.errstate(over="ignore"):
            weights = np.exp(-m)
        value = weights.mean()
    return value, -(Z.T @ weights) / len(m)


def _resolve_svm(X, y, svm, d):
    if isinstance(svm, str):
        if svm != "auto":
            raise ValueError("svm must be 'auto', None or a direction vector")
        try:
            return max_margin_direction(X, y)
        except ValueError:
            return None
    if svm is None:
        return None
    svm = np.asarray(svm, dtype=float).reshape(-1)
    if svm.shape != (d,) or not np.linalg.norm(svm) > 0:
        raise ValueError(f"svm must be a nonzero vector of length d={d}")
    return svm / np.linalg.norm(svm)


def train_linear_parametrization(X, y, params: Sequence[np.ndarray], forward: Callable, backward: Callable,
                                 lr: float, steps: int, record=40, loss: str = "logistic",
                                 normalized: bool = False, svm="auto") -> LinearNetPath:
    """Gradient descent on ``L(beta(params)) = mean_i loss(y_i <x_i, beta>)`` over the layers.

    ``forward(params)`` returns ``beta`` (length d); ``backward(params, g)`` returns the list of
    gradients of ``<g, beta(params)>`` with respect to each array in ``params`` (so with
    ``g = dL/dbeta`` it is the chain rule). ``loss``: ``"logistic"`` or ``"exp"``.
    ``normalized=True`` divides each step by the current loss (the loss-normalized steps of
    Nacson et al. 2019). ``record``: number of log-spaced checkpoints or explicit steps.
    A non-finite loss or layer stops the run and is reported in ``diverged_at``.
    """
    X, y = _check_labelled_data(X, y)
    n, d = X.shape
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if not (np.isscalar(lr) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    params = [np.array(p, dtype=float) for p in params]
    beta = np.asarray(forward(params), dtype=float)
    if beta.shape != (d,):
        raise ValueError(f"forward(params) must return a vector of length d={d}, got shape {beta.shape}")
    svm = _resolve_svm(X, y, svm, d)
    checkpoints = log_checkpoints(int(steps), record)
    Z = y[:, None] * X
    out_layers, out_beta, out_loss = [], [], []
    diverged_at = None
    t = 0
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported as divergence below
        for c in checkpoints:
            while t < c:  # the hot loop; a few matrix-vector products per step
                value, g = _loss_and_grad(forward(params), Z, loss)
                if not value < np.inf:  # NaN or inf: stop here
                    break
                step = lr / value if normalized else lr
                for p, gp in zip(params, backward(params, g)):
                    p -= step * gp
                t += 1
            beta = forward(params)
            value, _ = _loss_and_grad(beta, Z, loss)
            if not np.isfinite(value) or not all(np.all(np.isfinite(p)) for p in params):
                diverged_at = int(t)
                break
            out_layers.append([p.copy() for p in params])
            out_beta.append(beta.copy())
            out_loss.append(value)
    B = np.array(out_beta).reshape(-1, d)
    norms = np.linalg.norm(B, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    margin = np.where(norms > 0, (B @ Z.T).min(axis=1) / safe, np.nan)
    if svm is not None:
        angle = np.where(norms > 0, np.arccos(np.clip((B @ svm) / safe, -1.0, 1.0)), np.nan)
    else:
        angle = np.full(len(B), np.nan)
    return LinearNetPath(steps=checkpoints[: len(B)], layers=out_layers, beta=B, loss=np.array(out_loss),
                         margin=margin, angle=angle, svm=svm, lr=float(lr), diverged_at=diverged_at)


# ----------------------------------------------------------------------------- fully connected
def _chain_forward(Ws):
    """``beta`` with ``beta^T = W_L ... W_1`` (the last layer has one row)."""
    s = Ws[-1].ravel()
    for W in reversed(Ws[:-1]):
        s = W.T @ s
    return s


def _chain_backward(Ws):
    """Gradients of ``<g, beta>`` for ``beta^T = W_L ... W_1``: ``dW_k = s_k (W_{k-1}...W_1 g)^T``."""

    def backward(params, g):
        L = len(params)
        suffix = [None] * L  # suffix[k] = (W_L ... W_{k+2})^T, the row vector after layer k+1
        s = np.ones(1)
        for k in range(L - 1, -1, -1):
            suffix[k] = s
            s = params[k].T @ s
        grads, v = [], g
        for k in range(L):
            grads.append(np.outer(suffix[k], v))
            v = params[k] @ v
        return grads

    return backward


def deep_linear_gd(X, y, depth, width, init_scale, lr, steps, seed=0, record=40, svm="auto") -> LinearNetPath:
    """Train ``x -> W_L ... W_1 x`` by gradient descent on the average logistic loss.

    The setting of Ji & Telgarsky (2019, "Gradient descent aligns the layers of deep linear
    networks"): ``depth`` = L layers, hidden widths ``width`` (an int for all hidden layers or
    a sequence of L - 1 ints), output width 1; entries initialised i.i.d. ``N(0, init_scale^2)``
    from ``seed``. ``depth=1`` is plain logistic regression (from a random start).
    Returns a :class:`LinearNetPath` whose ``layers`` are ``[W_1, ..., W_L]`` at each checkpoint.
    """
    X, y = _check_labelled_data(X, y)
    d = X.shape[1]
    if int(depth) != depth or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    depth = int(depth)
    if np.isscalar(width):
        widths = [int(width)] * (depth - 1)
        if int(width) != width:
            raise ValueError(f"width must be a positive integer, got {width!r}")
    else:
        widths = [int(w) for w in width]
        if len(widths) != depth - 1:
            raise ValueError(f"width must list depth - 1 = {depth - 1} hidden widths, got {len(widths)}")
    if any(w < 1 for w in widths):
        raise ValueError(f"hidden widths must be >= 1, got {widths}")
    if not (np.isscalar(init_scale) and np.isfinite(init_scale) and init_scale >= 0):
        raise ValueError(f"init_scale must be a finite number >= 0, got {init_scale!r}")
    rng = np.random.default_rng(seed)
    dims = [d, *widths, 1]
    Ws = [init_scale * rng.standard_normal((dims[k + 1], dims[k])) for k in range(depth)]
    return train_linear_parametrization(X, y, Ws, _chain_forward, _chain_backward(Ws), lr, steps,
                                        record=record, loss="logistic", svm=svm)


def deep_linear_gd_batch(X, y, depth, width, init_scales, lr, steps, seeds=0, record=40,
                         svm="auto") -> list[LinearNetPath]:
    """:func:`deep_linear_gd` for several runs at once, as one batched computation.

    ``init_scales`` and ``seeds`` are scalars or equal-length sequences (a scalar is repeated);
    run ``b`` uses ``init_scales[b]`` and ``seeds[b]`` and starts from exactly the layers that
    ``deep_linear_gd(..., init_scale=init_scales[b], seed=seeds[b])`` draws. The layers of all
    runs are stacked along a leading batch axis, so one step costs about as many numpy calls
    as a single run's step: B runs take little more than the time of one. The iterates are those
    of the separate runs up to floating-point summation order. A run whose loss or layers stop
    being finite is frozen and reports ``diverged_at``; the others go on.
    Returns one :class:`LinearNetPath` per run.
    """
    X, y = _check_labelled_data(X, y)
    n, d = X.shape
    scales = np.atleast_1d(np.asarray(init_scales, dtype=float))
    seed_list = np.atleast_1d(np.asarray(seeds))
    if scales.ndim != 1 or seed_list.ndim != 1 or scales.size == 0 or seed_list.size == 0:
        raise ValueError("init_scales and seeds must be scalars or non-empty 1-d sequences")
    B = max(scales.size, seed_list.size)
    if scales.size not in (1, B) or seed_list.size not in (1, B):
        raise ValueError(f"init_scales ({scales.size}) and seeds ({seed_list.size}) must have the same length or be scalars")
    scales = np.broadcast_to(scales, (B,))
    seed_list = np.broadcast_to(seed_list, (B,))
    if not all(float(s).is_integer() and s >= 0 for s in seed_list):
        raise ValueError(f"seeds must be non-negative integers, got {seed_list.tolist()}")
    if not (np.isscalar(lr) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    # draw each run's layers exactly as deep_linear_gd does (and let it validate the shapes)
    firsts = [deep_linear_gd(X, y, depth, width, float(sc), lr, 0, seed=int(sd), record=[0], svm=None)
              for sc, sd in zip(scales, seed_list)]
    Ws = [np.stack([f.final_layers[k] for f in firsts]) for k in range(int(depth))]  # (B, out, in)
    L = len(Ws)
    svm = _resolve_svm(X, y, svm, d)
    checkpoints = log_checkpoints(int(steps), record)
    Z = y[:, None] * X
    active = np.ones(B, dtype=bool)
    diverged_at = [None] * B
    rec_layers = [[] for _ in range(B)]
    rec_beta = [[] for _ in range(B)]
    rec_loss = [[] for _ in range(B)]

    def forward():
        s = Ws[-1][:, 0, :]  # (B, width): the last layer's row
        for W in reversed(Ws[:-1]):
            s = np.matmul(s[:, None, :], W)[:, 0, :]
        return s  # (B, d)

    def loss_grad(beta):
        m = beta @ Z.T  # (B, n)
        value = np.logaddexp(0.0, -m).mean(axis=1)
        weights = 0.5 * (1.0 - np.tanh(0.5 * m))
        return value, -(weights @ Z) / n

    t = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for c in checkpoints:
            while t < c and active.any():
                value, g = loss_grad(forward())
                bad = active & ~(value < np.inf)
                if bad.any():  # freeze those runs where they are
                    active &= ~bad
                eta = np.where(active, lr, 0.0)
                suffix = [None] * L  # row vector after layer k+1, per run
                s = np.ones((B, 1))
                for k in range(L - 1, -1, -1):
                    suffix[k] = s
                    s = np.matmul(s[:, None, :], Ws[k])[:, 0, :]
                v = g
                for k in range(L):
                    grad = suffix[k][:, :, None] * v[:, None, :]
                    v = np.matmul(Ws[k], v[:, :, None])[:, :, 0]
                    Ws[k] -= eta[:, None, None] * grad
                t += 1
            beta = forward()
            value, _ = loss_grad(beta)
            for b in range(B):
                if diverged_at[b] is not None:
                    continue
                finite = np.isfinite(value[b]) and all(np.all(np.isfinite(W[b])) for W in Ws)
                if not finite or not active[b]:
                    diverged_at[b] = int(t)
                    active[b] = False
                    continue
                rec_layers[b].append([W[b].copy() for W in Ws])
                rec_beta[b].append(beta[b].copy())
                rec_loss[b].append(float(value[b]))
    out = []
    for b in range(B):
        Bm = np.array(rec_beta[b]).reshape(-1, d)
        norms = np.linalg.norm(Bm, axis=1)
        safe = np.where(norms > 0, norms, 1.0)
        margin = np.where(norms > 0, (Bm @ Z.T).min(axis=1) / safe, np.nan)
        if svm is not None:
            angle = np.where(norms > 0, np.arccos(np.clip((Bm @ svm) / safe, -1.0, 1.0)), np.nan)
        else:
            angle = np.full(len(Bm), np.nan)
        out.append(LinearNetPath(steps=checkpoints[: len(Bm)], layers=rec_layers[b], beta=Bm,
                                 loss=np.array(rec_loss[b]), margin=margin, angle=angle, svm=svm,
                                 lr=float(lr), diverged_at=diverged_at[b]))
    return out


# ----------------------------------------------------------------------------- diagnostics
def _check_matrix(W, name="W"):
    W = np.asarray(W, dtype=float)
    if W.ndim != 2 or W.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {W.shape}")
    if not np.all(np.isfinite(W)):
        raise ValueError(f"{name} has NaN or infinite entries")
    return W


def rank1_ratio(W) -> float:
    """``||W||_2 / ||W||_F`` in ``[1/sqrt(rank), 1]``; it is 1 exactly when ``W`` has rank one."""
    W = _check_matrix(W)
    fro = np.linalg.norm(W)
    if fro == 0:
        raise ValueError("W is the zero matrix; its rank-one ratio is undefined")
    return float(np.linalg.norm(W, 2) / fro)


def top_singular_vectors(W):
    """``(u, s, v)``: the top singular value ``s`` of ``W`` with its left/right singular vectors."""
    W = _check_matrix(W)
    U, S, Vt = np.linalg.svd(W, full_matrices=False)
    return U[:, 0], float(S[0]), Vt[0]


def alignment(Ws) -> np.ndarray:
    """``|<v_{i+1}, u_i>|`` for adjacent layers ``W_i, W_{i+1}`` of ``x -> W_L ... W_1 x``.

    ``u_i`` is the top left singular vector of ``W_i`` (its output direction) and ``v_{i+1}``
    the top right singular vector of ``W_{i+1}`` (its input direction); Ji & Telgarsky (2019)
    show both tend to the same line. Returns an array of length L - 1.
    """
    Ws = [_check_matrix(W, f"Ws[{i}]") for i, W in enumerate(Ws)]
    if len(Ws) < 2:
        raise ValueError("alignment needs at least two layers")
    out = []
    for i, (lower, upper) in enumerate(zip(Ws[:-1], Ws[1:])):
        if upper.shape[1] != lower.shape[0]:
            raise ValueError(f"layers {i} and {i + 1} do not compose: W_{i + 1} has {lower.shape[0]} rows, "
                             f"W_{i + 2} has {upper.shape[1]} columns")
        if not np.any(lower) or not np.any(upper):
            raise ValueError(f"layer {i} or {i + 1} is zero; its singular vectors are undefined")
        u, _, _ = top_singular_vectors(lower)
        _, _, v = top_singular_vectors(upper)
        out.append(abs(float(u @ v)))
    return np.array(out)


def frobenius_norms(Ws) -> np.ndarray:
    """The Frobenius norms ``||W_k||_F`` of the layers."""
    return np.array([np.linalg.norm(_check_matrix(W, f"Ws[{i}]")) for i, W in enumerate(Ws)])


# ----------------------------------------------------------------------------- data
def soudry_data(far=((3.0, 2.5), (2.0, 4.0), (4.0, 3.5))):
    """Soudry et al.'s (2018, Fig. 1) data: support vectors ``(0.5, 1.5)``, ``(1.5, 0.5)`` labelled
    +1, their negatives -1, plus the points ``far`` (+1) and their negatives (-1).

    The max-margin vector with margin 1 is ``(0.5, 0.5)``. Returns ``(X, y)``.
    """
    far = np.asarray(far, dtype=float).reshape(-1, 2)
    pos = np.vstack([[0.5, 1.5], [1.5, 0.5], far])
    X = np.vstack([pos, -pos])
    y = np.concatenate([np.ones(len(pos)), -np.ones(len(pos))])
    return X, y


def random_separable(n, d, seed=0):
    """``n`` Gaussian points in ``R^d`` labelled by a random hyperplane through the origin."""
    if int(n) != n or int(d) != d or n < 1 or d < 1:
        raise ValueError(f"n and d must be positive integers, got n={n!r}, d={d!r}")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(int(d))
    X = rng.standard_normal((int(n), int(d)))
    y = np.where(X @ w >= 0, 1.0, -1.0)
    return X, y


def two_blobs(n, separation, seed=0, angle=0.5, stretch=(1.6, 0.35)):
    """Two elongated blobs centred at ``+-separation * (cos angle, sin angle)``, labels +-1.

    Points are uniform in an ellipse with semi-axes ``stretch`` tilted by 45 degrees from the
    centre line, so the max-margin direction differs from the direction between the means.
    Small separations overlap (then no hyperplane through the origin separates them).
    """
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not (np.isfinite(separation) and separation >= 0):
        raise ValueError(f"separation must be a finite number >= 0, got {separation!r}")
    rng = np.random.default_rng(seed)
    m = int(n) // 2
    r = np.sqrt(rng.uniform(size=(2 * m, 1)))
    phi = rng.uniform(0, 2 * np.pi, size=(2 * m, 1))
    disc = r * np.hstack([np.cos(phi), np.sin(phi)]) * np.asarray(stretch)
    tilt = angle + np.pi / 4
    R = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
    centre = separation * np.array([np.cos(angle), np.sin(angle)])
    pts = disc @ R.T
    X = np.vstack([centre + pts[:m], -centre + pts[m:]])
    y = np.concatenate([np.ones(m), -np.ones(m)])
    return X, y


# ----------------------------------------------------------------------------- plots
def _log_steps(steps):
    return np.maximum(np.asarray(steps, dtype=float), 1.0)


def plot_soudry(path, w_hat, w_tilde, limit):
    """Three panels for GD on Soudry's data: offset ``w(t) - w_hat ln t``, ``t L(w(t))``, angle."""
    from helpers import plotting

    fig, axes = plotting.subplots(1, 3, width=10.0, height=3.0)
    t = _log_steps(path.steps)
    keep = path.steps >= 1
    off = path.w - np.log(t)[:, None] * w_hat
    for j in range(off.shape[1]):
        axes[0].semilogx(t[keep], off[keep, j], label=f"coordinate {j + 1}")
        axes[0].axhline(w_tilde[j], color=plotting.COLORS["theory"], ls="--", lw=1)
    axes[0].set(xlabel="step t", title=r"$w(t) - \hat w \ln t$")
    axes[0].legend()
    axes[1].semilogx(t[keep], path.steps[keep] * path.loss[keep], color=plotting.COLORS["gd"], label="GD")
    axes[1].axhline(limit, color=plotting.COLORS["theory"], ls="--", lw=1, label=r"$\|\hat w\|^2/\eta$")
    axes[1].set(xlabel="step t", title=r"$t\,L(w(t))$")
    axes[1].legend()
    axes[2].loglog(t[keep], path.angle[keep], color=plotting.COLORS["gd"])
    axes[2].set(xlabel="step t", title="angle to the SVM (rad)")
    return fig


def plot_angle_rate(path, limit=None):
    """Angle to the SVM direction and the same angle times ``ln t`` on random separable data."""
    from helpers import plotting

    fig, axes = plotting.subplots(1, 2, width=7.5, height=3.0)
    keep = path.steps >= 2
    t = path.steps[keep].astype(float)
    axes[0].loglog(t, path.angle[keep], color=plotting.COLORS["gd"])
    axes[0].set(xlabel="step t", title="angle to the SVM (rad)")
    axes[1].semilogx(t, path.angle[keep] * np.log(t), color=plotting.COLORS["gd"], label="GD")
    if limit is not None:
        axes[1].axhline(limit, color=plotting.COLORS["theory"], ls="--", lw=1, label="predicted limit")
    axes[1].set(xlabel="step t", title=r"angle $\times \ln t$", ylim=(0, None))
    axes[1].legend()
    return fig


def plot_nonseparable(path, split):
    """GD on non-separable data: the growing coordinate against ``ln t``, the other against its limit."""
    from helpers import plotting

    fig, axes = plotting.subplots(1, 3, width=10.0, height=3.0)
    keep = path.steps >= 1
    t = path.steps[keep].astype(float)
    u = split.w_hat / np.linalg.norm(split.w_hat)
    B = split.basis
    along = path.w[keep] @ u
    axes[0].semilogx(t, along, color=plotting.COLORS["gd"], label=r"$\langle w(t), \hat u\rangle$")
    axes[0].semilogx(t, np.linalg.norm(split.w_hat) * np.log(t), color=plotting.COLORS["theory"], ls="--",
                     lw=1, label=r"$\|\hat w\|\ln t$")
    axes[0].set(xlabel="step t", title="separable direction")
    axes[0].legend()
    inside = path.w[keep] @ B[:, 0]
    axes[1].semilogx(t, inside, color=plotting.COLORS["gd"], label="GD")
    axes[1].axhline(split.offset @ B[:, 0], color=plotting.COLORS["theory"], ls="--", lw=1, label="minimiser")
    axes[1].set(xlabel="step t", title="strongly convex direction")
    axes[1].legend()
    axes[2].loglog(t, np.abs(inside - split.offset @ B[:, 0]), color=plotting.COLORS["gd"])
    axes[2].set(xlabel="step t", title="distance to the minimiser")
    return fig


def layer_diagnostics(path):
    """Per checkpoint: rank-one ratios (k x L), adjacent alignments (k x L-1), Frobenius norms (k x L)."""
    ratios, aligns, norms = [], [], []
    for Ws in path.layers:
        ratios.append([rank1_ratio(W) if np.any(W) else np.nan for W in Ws])
        aligns.append(alignment(Ws) if len(Ws) > 1 else np.zeros(0))
        norms.append(frobenius_norms(Ws))
    return np.array(ratios), np.array(aligns), np.array(norms)


def plot_alignment(paths, labels):
    """Rank-one ratios, adjacent alignment and angle to the SVM for several deep linear runs."""
    from helpers import plotting

    fig, axes = plotting.subplots(1, 3, width=10.0, height=3.0)
    styles = ["-", "--", ":", "-."]
    for i, (path, label) in enumerate(zip(paths, labels)):
        ratios, aligns, _ = layer_diagnostics(path)
        keep = path.steps >= 1
        t = path.steps[keep]
        colour = plotting.STYLE["axes.prop_cycle"].by_key()["color"][i]
        axes[0].semilogx(t, ratios[keep].min(axis=1), color=colour, ls=styles[i % 4], label=label)
        axes[1].loglog(t, np.maximum(1 - aligns[keep].min(axis=1), 1e-16), color=colour, ls=styles[i % 4], label=label)
        axes[2].loglog(t, path.angle[keep], color=colour, ls=styles[i % 4], label=label)
    axes[0].set(xlabel="step t", title=r"min$_k$ $\|W_k\|_2/\|W_k\|_F$")
    axes[1].set(xlabel="step t", title=r"1 $-$ min adjacent alignment")
    axes[2].set(xlabel="step t", title="angle of the product to the SVM")
    axes[0].legend()
    return fig


# ----------------------------------------------------------------------------- the widget
def blobs_path(separation, depth, steps=400, n=40, init_scale=0.3, lr=0.5, seed=0):
    """Widget compute: a deep linear net (width 4) on :func:`two_blobs`; the data, path and SVM."""
    X, y = two_blobs(n, separation, seed=seed)
    path = deep_linear_gd(X, y, depth=depth, width=4, init_scale=init_scale, lr=lr, steps=steps, seed=seed,
                          record=15)
    return {"X": X, "y": y, "path": path, "separation": separation, "depth": depth}


def plot_blobs_path(res):
    """Widget plot: data with the product's direction over time and the SVM line; angle vs step."""
    from matplotlib import cm
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    from helpers import plotting

    fig = Figure(figsize=(7.6, 3.3))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"left": 0.06, "right": 0.98, "bottom": 0.15, "top": 0.9,
                                             "wspace": 0.28})
    X, y, path = res["X"], res["y"], res["path"]
    ax.scatter(*X[y > 0].T, s=24, marker="+", color=plotting.COLORS["gd"])
    ax.scatter(*X[y < 0].T, s=12, marker="o", facecolors="none", edgecolors=plotting.COLORS["other"])
    lim = np.abs(X).max() * 1.1
    # one LineCollection for the decision lines over time: far cheaper to draw than many plots
    norms = np.linalg.norm(path.beta, axis=1)
    betas = path.beta[norms > 0] / norms[norms > 0, None]
    ends = np.stack([betas[:, 1], -betas[:, 0]], axis=1) * lim * 1.5
    segments = np.stack([-ends, ends], axis=1)
    ax.add_collection(LineCollection(segments, colors=cm.viridis(np.linspace(0, 1, len(segments))), lw=0.8,
                                     alpha=0.7))
    if path.svm is not None:
        s = path.svm
        line = np.array([-s[1], s[0]]) * lim * 1.5
        ax.plot([-line[0], line[0]], [-line[1], line[1]], color="k", ls="--", lw=1.5, label="SVM")
        ax.legend(loc="lower right")
        keep = path.steps >= 1
        # linear axes over log10(t): log-scaled axes double the drawing time of a frame
        ax2.plot(np.log10(path.steps[keep]), np.degrees(path.angle[keep]), color=plotting.COLORS["gd"], marker=".")
        ax2.set(xlabel=r"log$_{10}$ step", ylabel="angle to the SVM (degrees)", ylim=(0, None))
        ax2.set_title(f"depth {res['depth']}: final angle {np.degrees(path.angle[-1]):.2f} degrees")
    else:
        plotting.message_axes(ax2, "not separable through the origin:\nno max-margin direction;\n"
                              "GD converges to a finite point")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal",
           title=f"separation {res['separation']}: decision lines (dark = early)")
    return fig


@widgets.register("ch07-deep-linear")
def deep_linear_widget():
    """Spec: separation of two blobs x depth of the linear net (4 x 4 = 16 pre-rendered frames)."""
    return widgets.Spec(
        compute=blobs_path,
        plot=plot_blobs_path,
        grid={"separation": [0.0, 0.5, 1.0, 2.0], "depth": [1, 2, 3, 4]},
        default={"separation": 1.0, "depth": 2},
        title="Deep linear network on two blobs: the product's decision line over training",
        labels={"separation": "blob separation", "depth": "depth L"},
    )


# ----------------------------------------------------------------------------- chapter 8: convnets
# Gunasekar, Lee, Soudry & Srebro (2018, NeurIPS): a full-width circular linear convnet. With the
# unitary DFT F, the end-to-end predictor satisfies F beta = (F w_1) * ... * (F w_L) entrywise, so
# in the Fourier domain the network is a *diagonal* linear network with complex weights.
def unitary_dft(D):
    """The unitary DFT matrix ``F[k, j] = exp(-2 pi i k j / D) / sqrt(D)`` (``F^H F = I``)."""
    if int(D) != D or D < 1:
        raise ValueError(f"D must be a positive integer, got {D!r}")
    k = np.arange(int(D))
    return np.exp(-2j * np.pi * np.outer(k, k) / int(D)) / np.sqrt(int(D))


def fourier_magnitudes(beta):
    """``|F beta|``: the moduli of the unitary DFT of a real vector (or of each row of a 2-D array)."""
    beta = np.asarray(beta, dtype=float)
    if beta.ndim not in (1, 2) or beta.shape[-1] < 1:
        raise ValueError(f"beta must be a non-empty vector or 2-D array of vectors, got shape {beta.shape}")
    return np.abs(np.fft.fft(beta, axis=-1)) / np.sqrt(beta.shape[-1])


def circular_conv_net(filters):
    """End-to-end predictor of a full-width circular linear convnet with filters ``w_1, ..., w_L``.

    ``beta = D^{-(L-1)/2} w_1 (*) w_2 (*) ... (*) w_L`` with ``(a (*) b)[k] = sum_j a[j] b[(k - j) mod D]``;
    the scale makes ``F beta`` the entrywise product of the ``F w_l`` (``F`` unitary).
    """
    filters = [np.asarray(w, dtype=float).reshape(-1) for w in filters]
    if not filters:
        raise ValueError("give at least one filter")
    D = filters[0].size
    if any(w.size != D for w in filters):
        raise ValueError("all filters must have the same length D (full-width convolutions)")
    prod = np.prod([np.fft.fft(w) for w in filters], axis=0)
    return np.real(np.fft.ifft(prod)) * D ** (-(len(filters) - 1) / 2)


def _conv_parametrization(D):
    F = unitary_dft(D)
    FH = F.conj().T

    def forward(params):
        hat = np.prod([F @ w for w in params], axis=0)
        return np.real(FH @ hat)

    def backward(params, g):
        # <g, beta> = Re sum_j conj(g_hat_j) prod_l w_hat_lj, so the gradient in the (real)
        # filter w_k is Re F^H (conj(r_hat) * g_hat), r_hat the product over the other layers.
        hats = [F @ w for w in params]
        g_hat = F @ g
        grads = []
        for k in range(len(params)):
            r = np.ones(D, dtype=complex)
            for l, h in enumerate(hats):
                if l != k:
                    r = r * h
            grads.append(np.real(FH @ (np.conj(r) * g_hat)))
        return grads

    return forward, backward


def _check_depth(depth):
    if isinstance(depth, bool) or int(depth) != depth or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    return int(depth)


def _check_scale(init_scale):
    if not (np.isscalar(init_scale) and np.isfinite(init_scale) and init_scale > 0):
        raise ValueError(f"init_scale must be a positive finite number, got {init_scale!r}")
    return float(init_scale)


def linear_convnet_gd(X, y, depth, lr, steps, seed=0, normalized=True, init_scale=0.1, loss="exp",
                      record=40, svm="auto", loss_floor=1e-150) -> LinearNetPath:
    """Gradient descent on a full-width circular linear convnet (Gunasekar et al. 2018, NeurIPS).

    The network maps ``x`` to ``<x, beta>`` with ``beta = D^{-(L-1)/2} w_1 (*) ... (*) w_L``
    (:func:`circular_conv_net`): ``depth`` = L filters, each of the input's length D, entries
    i.i.d. ``N(0, init_scale^2 / D)`` from ``seed``. The loss is ``loss`` (``"exp"`` by default,
    as in the paper's theorem, or ``"logistic"``) averaged over the examples; ``normalized=True``
    divides each step by the current loss (Nacson et al. 2019), which speeds up the slow
    logarithmic convergence in direction. On separable data the direction of ``beta`` tends to a
    first-order stationary point of ``min ||F beta||_{2/L} s.t. y_n <x_n, beta> >= 1`` (for
    L = 2 the convex Fourier-l1 max margin, :func:`helpers.implicit_bias.fourier_l1_max_margin`).
    ``normalized=True`` uses the step ``lr / (L(w_t) rho_t^{2(L-1)})`` with ``rho_t^2`` the mean
    squared filter norm (see :func:`_homogeneous_normalization`); ``False`` a fixed step ``lr``.
    ``depth=1`` is plain gradient descent on a linear predictor. Returns a
    :class:`LinearNetPath` (``layers`` are the filters, ``beta`` the predictor at checkpoints).

    ``loss_floor``: training stops at the first checkpoint whose loss is below it (the run's
    ``steps`` then end early). Loss-normalized steps drive the exponential loss to zero
    geometrically; stopping before it underflows keeps ``lr / loss`` finite, and at a loss of
    ``1e-150`` the normalized margin is already within ``log(n) / 345`` of its limit value.
    """
    X, y = _check_labelled_data(X, y)
    depth = _check_depth(depth)
    init_scale = _check_scale(init_scale)
    D = X.shape[1]
    rng = np.random.default_rng(seed)
    filters = [init_scale * rng.standard_normal(D) / np.sqrt(D) for _ in range(depth)]
    forward, backward = _conv_parametrization(D)
    if normalized:
        backward = _homogeneous_normalization(backward, depth)
    return _train_until(X, y, filters, forward, backward, lr, steps, record, loss, normalized, svm, loss_floor)


def _homogeneous_normalization(backward, depth):
    """Scale a backward function by ``max(rho^2, 1)^{-(L-1)}``, ``rho^2`` the mean squared layer norm.

    With loss-normalized steps this gives ``eta_t = lr / (L(w_t) rho_t^{2(L-1)})``: for a model
    of degree L in its layers, the end-to-end predictor then moves at the pace of normalized GD
    on a linear model (the gradient in the layers carries ``rho^{L-1}`` and so does the map from
    layers to predictor), instead of growing exponentially (L = 2) or stalling. L = 1 is unchanged.
    """
    if depth == 1:
        return backward

    def scaled(params, g):
        rho2 = np.mean([float(np.sum(p * p)) for p in params])
        factor = max(rho2, 1.0) ** (-(depth - 1))  # plain lr / L(w) while the layers are small
        return [factor * gp for gp in backward(params, g)]

    return scaled


def _train_until(X, y, params, forward, backward, lr, steps, record, loss, normalized, svm, loss_floor):
    """:func:`train_linear_parametrization` run checkpoint to checkpoint, stopping once the loss
    is below ``loss_floor`` (so that loss-normalized steps never divide by an underflowed loss)."""
    X, y = _check_labelled_data(X, y)
    if not (np.isscalar(loss_floor) and 0 <= loss_floor < 1):
        raise ValueError(f"loss_floor must be a number in [0, 1), got {loss_floor!r}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    checkpoints = log_checkpoints(int(steps), record)
    svm = _resolve_svm(X, y, svm, X.shape[1])
    first = train_linear_parametrization(X, y, params, forward, backward, lr, 0, record=[0], loss=loss,
                                         normalized=normalized, svm=svm)
    parts, t, diverged_at = [first], 0, None
    current = first.final_layers
    for c in checkpoints[1:]:
        if parts[-1].loss[-1] < loss_floor:
            break
        chunk = train_linear_parametrization(X, y, current, forward, backward, lr, int(c - t), record=[int(c - t)],
                                             loss=loss, normalized=normalized, svm=svm)
        if chunk.diverged:
            diverged_at = t + chunk.diverged_at
            break
        last = LinearNetPath(steps=np.array([c]), layers=[chunk.final_layers], beta=chunk.beta[-1:],
                             loss=chunk.loss[-1:], margin=chunk.margin[-1:], angle=chunk.angle[-1:], svm=svm,
                             lr=float(lr))
        parts.append(last)
        current, t = chunk.final_layers, int(c)
    return LinearNetPath(steps=np.concatenate([p.steps for p in parts]), layers=[p.layers[-1] for p in parts],
                         beta=np.vstack([p.beta for p in parts]), loss=np.concatenate([p.loss for p in parts]),
                         margin=np.concatenate([p.margin for p in parts]),
                         angle=np.concatenate([p.angle for p in parts]), svm=svm, lr=float(lr),
                         diverged_at=diverged_at)


def fc_linear_gd(X, y, depth, lr, steps, seed=0, normalized=True, width=None, init_scale=0.1, loss="exp",
                 record=40, svm="auto", loss_floor=1e-150) -> LinearNetPath:
    """Fully connected linear net ``x -> W_L ... W_1 x`` trained like :func:`linear_convnet_gd`.

    Same loss and (loss-normalized) steps as the convnet, so the two parametrizations can be
    compared; hidden ``width`` defaults to the input dimension (no bottleneck). Entries are
    i.i.d. ``N(0, init_scale^2 / fan_in)``. Direction limit: the l2 max margin
    (Gunasekar et al. 2018; Ji & Telgarsky 2019).
    """
    X, y = _check_labelled_data(X, y)
    depth = _check_depth(depth)
    init_scale = _check_scale(init_scale)
    d = X.shape[1]
    width = d if width is None else width
    if isinstance(width, bool) or int(width) != width or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    dims = [d, *([int(width)] * (depth - 1)), 1]
    rng = np.random.default_rng(seed)
    Ws = [init_scale * rng.standard_normal((dims[k + 1], dims[k])) / np.sqrt(dims[k]) for k in range(depth)]
    backward = _chain_backward(Ws)
    if normalized:
        backward = _homogeneous_normalization(backward, depth)
    return _train_until(X, y, Ws, _chain_forward, backward, lr, steps, record, loss, normalized, svm, loss_floor)


def unit_margin(beta, X, y):
    """``beta / min_n y_n <x_n, beta>``: the predictor rescaled to margin one (needs a positive margin)."""
    beta = np.asarray(beta, dtype=float)
    X, y = _check_labelled_data(X, y)
    if beta.shape != (X.shape[1],):
        raise ValueError(f"beta must have length d={X.shape[1]}, got shape {beta.shape}")
    m = float((y * (X @ beta)).min())
    if not m > 0:
        raise ValueError(f"beta does not separate the data (min margin {m:.3g} <= 0); cannot rescale")
    return beta / m


def effective_frequencies(beta):
    """``||F beta||_1^2 / ||F beta||_2^2``: between 1 and D, the number of frequencies a predictor uses."""
    m = fourier_magnitudes(beta)
    if m.ndim != 1 or not m.any():
        raise ValueError("beta must be a nonzero vector")
    return float(m.sum() ** 2 / (m @ m))


def plot_spectra(betas: dict, title="DFT magnitudes of the unit-norm predictors"):
    """Bar charts of ``|F beta| / ||beta||`` side by side, one panel per named predictor."""
    from helpers import plotting

    fig, axes = plotting.subplots(1, len(betas), width=min(3.0 * len(betas), 10.0), height=2.6, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (name, beta) in zip(axes, betas.items()):
        beta = np.asarray(beta, dtype=float)
        mag = fourier_magnitudes(beta / np.linalg.norm(beta))
        ax.bar(np.arange(len(mag)), mag, color=plotting.COLORS["gd"], width=0.8)
        ax.set(title=f"{name}\n{effective_frequencies(beta):.2f} effective frequencies", xlabel="frequency k")
    axes[0].set_ylabel(r"$|(F\beta)_k| / \|\beta\|$")
    fig.suptitle(title, fontsize=10)
    return fig


def parametrization_run(architecture, depth, seed=0, steps=800, n=5, D=16, lr=0.2, init_scale=0.3):
    """Widget compute: a fully connected or convolutional linear net of the given depth on
    :func:`random_separable` data (n points in D dimensions); the path and the Fourier-l1 optimum."""
    from helpers import implicit_bias as ib

    X, y = random_separable(n, D, seed=seed)
    if architecture == "convolutional":
        path = linear_convnet_gd(X, y, depth, lr, steps, seed=seed, init_scale=init_scale, record=8)
    elif architecture == "fully connected":
        path = fc_linear_gd(X, y, depth, lr, steps, seed=seed, init_scale=init_scale, record=8)
    else:
        raise ValueError("architecture must be 'fully connected' or 'convolutional'")
    return {"path": path, "architecture": architecture, "depth": depth, "X": X, "y": y,
            "svm_f1": ib.fourier_l1_norm(unit_margin(path.svm, X, y))}


def plot_parametrization_run(res):
    """Widget plot: the predictor's DFT magnitudes at the checkpoints (dark = early), and its
    Fourier-l1 norm at unit margin over training against the l2-SVM's."""
    from matplotlib import cm
    from matplotlib.figure import Figure

    from helpers import implicit_bias as ib
    from helpers import plotting

    path = res["path"]
    fig = Figure(figsize=(7.6, 3.0))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"left": 0.08, "right": 0.98, "bottom": 0.17, "top": 0.86,
                                             "wspace": 0.3})
    if path.diverged:
        plotting.message_axes(ax, f"diverged at step {path.diverged_at}")
        return fig
    colours = cm.viridis(np.linspace(0, 1, len(path.beta)))
    f1, steps = [], []
    for k, beta in enumerate(path.beta):
        nb = np.linalg.norm(beta)
        if nb == 0:
            continue
        ax.plot(fourier_magnitudes(beta / nb), color=colours[k], lw=1.2)
        margins = res["y"] * (res["X"] @ beta)
        if margins.min() > 0:
            f1.append(ib.fourier_l1_norm(beta / margins.min()))
            steps.append(max(path.steps[k], 1))
    ax.set(xlabel="frequency k", ylabel=r"$|(F\beta)_k|/\|\beta\|$",
           title=f"{res['architecture']}, depth {res['depth']}")
    ax2.plot(np.log10(steps), f1, marker=".", color=plotting.COLORS["gd"], label="network")
    ax2.axhline(res["svm_f1"], color=plotting.COLORS["theory"], ls="--", lw=1, label="l2 SVM")
    ax2.set(xlabel=r"log$_{10}$ step", title=r"$\|F\beta\|_1$ at unit margin")
    ax2.legend()
    return fig


@widgets.register("ch08-parametrizations")
def parametrization_widget():
    """Spec: architecture x depth x data seed (2 x 3 x 4 = 24 pre-rendered frames)."""
    return widgets.Spec(
        compute=parametrization_run,
        plot=plot_parametrization_run,
        grid={"architecture": ["fully connected", "convolutional"], "depth": [1, 2, 3], "seed": [0, 1, 2, 3]},
        default={"architecture": "convolutional", "depth": 2, "seed": 0},
        title="Same data, same loss, different parametrization: the predictor's spectrum during training",
        labels={"architecture": "architecture", "depth": "depth L", "seed": "data seed"},
    )
