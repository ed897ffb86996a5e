"""Policy gradient for the linear quadratic regulator (chapter 5, Fazel's talk).

The setting of Fazel, Ge, Kakade & Mesbahi (2018), "Global convergence of policy gradient
methods for the linear quadratic regulator": discrete time, infinite horizon, no process
noise, a random initial state,

    x_{t+1} = A x_t + B u_t,   u_t = -K x_t,   x_0 ~ D with E[x_0 x_0'] = Sigma0,
    C(K) = E_{x_0} sum_{t>=0} x_t' Q x_t + u_t' R u_t.

Everything exact goes through two discrete Lyapunov equations (closed loop M = A - B K):

    P_K     = Q + K' R K + M' P_K M        (value matrix: x' P_K x is the cost-to-go from x)
    Sigma_K = Sigma0 + M Sigma_K M'        (state covariance summed over time)

so that C(K) = tr(P_K Sigma0) = tr((Q + K' R K) Sigma_K) and, by the paper's Lemma 1,

    grad C(K) = 2 ((R + B' P_K B) K - B' P_K A) Sigma_K = 2 E_K Sigma_K.

Step conventions. The gradient here carries its factor 2. The paper's convergence proofs
treat grad C(K) Sigma_K^{-1} as E_K (the factor 2 is dropped there), so a step size eta in the
paper's theorems equals 2 * lr here: the paper's Gauss-Newton step eta = 1 (policy iteration)
is ``gauss_newton_step(..., lr=0.5)``. See :func:`theorem_step`.

Sections: system checks and exact quantities (``riccati``, ``cost``, ``policy_gradient``);
the three update rules and ``optimize``; model-free estimates from simulated rollouts
(``rollout_costs``, ``zeroth_order_gradient``, ``model_free_optimize``); the chapter's
experiments; plots; the widget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from helpers import widgets

__all__ = [
    "planning_system", "random_system", "riccati", "optimal_gain", "spectral_radius", "is_stabilizing",
    "state_covariance", "value_matrix", "cost", "policy_gradient", "gradient_step", "natural_gradient_step",
    "gauss_newton_step", "optimize", "OptimizeResult", "theorem_step", "rollout_costs",
    "zeroth_order_gradient", "model_free_optimize", "ModelFreeResult", "gradient_domination_ratios",
    "smoothing_bias", "estimator_errors", "cost_slice", "closed_loop_trajectory",
]

METHODS = {
    "gd": "gd", "gradient": "gd",
    "natural": "natural", "ngd": "natural", "natural_gradient": "natural",
    "gauss_newton": "gauss_newton", "gn": "gauss_newton", "gauss-newton": "gauss_newton",
}
METHOD_LABELS = {"gd": "gradient descent", "natural": "natural gradient", "gauss_newton": "Gauss-Newton"}


# --------------------------------------------------------------------------------------------
# Systems and input checks
# --------------------------------------------------------------------------------------------

def planning_system():
    """The 3-state example used throughout the chapter: A slightly unstable, B = Q = R = Sigma0 = I.

    Returns ``(A, B, Q, R, Sigma0, K0)`` with ``K0 = 0.2 I`` (a stabilising start).
    """
    A = np.array([[1.01, 0.01, 0.0], [0.01, 1.01, 0.01], [0.0, 0.01, 1.01]])
    eye = np.eye(3)
    return A, eye.copy(), eye.copy(), eye.copy(), eye.copy(), 0.2 * eye


def random_system(d=3, k=None, seed=0, scale=1.0):
    """A random LQR instance: ``A`` with spectral radius ``scale`` (may be unstable), random ``B``,
    random positive definite ``Q``, ``R``, ``Sigma0``. Returns ``(A, B, Q, R, Sigma0)``."""
    if int(d) < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    k = d if k is None else int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    A *= scale / max(spectral_radius(A), 1e-12)
    B = rng.standard_normal((d, k))

    def spd(n):
        G = rng.standard_normal((n, n))
        return G @ G.T / n + 0.5 * np.eye(n)

    return A, B, spd(d), spd(k), spd(d)


def _matrix(name, X, shape=None):
    try:
        X = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real matrix") from None
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got an array of shape {X.shape}")
    if shape is not None and X.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains non-finite entries")
    return X


def _psd(name, X, n, definite):
    X = _matrix(name, X, (n, n))
    if not np.allclose(X, X.T, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(X).max())):
        raise ValueError(f"{name} must be symmetric")
    X = (X + X.T) / 2
    lo = np.linalg.eigvalsh(X).min()
    if definite and lo <= 0:
        raise ValueError(f"{name} must be positive definite (smallest eigenvalue {lo:.3g})")
    if not definite and lo < -1e-10 * max(1.0, np.abs(X).max()):
        raise ValueError(f"{name} must be positive semidefinite (smallest eigenvalue {lo:.3g})")
    return X


def _system(A, B, Q=None, R=None, Sigma0=None, K=None):
    """Validate and convert; returns float arrays (None stays None)."""
    A = _matrix("A", A)
    d = A.shape[0]
    if A.shape != (d, d):
        raise ValueError(f"A must be square, got shape {A.shape}")
    B = _matrix("B", B)
    if B.shape[0] != d:
        raise ValueError(f"B must have {d} rows (one per state), got shape {B.shape}")
    k = B.shape[1]
    Q = None if Q is None else _psd("Q", Q, d, definite=False)
    R = None if R is None else _psd("R", R, k, definite=True)
    Sigma0 = None if Sigma0 is None else _psd("Sigma0", Sigma0, d, definite=False)
    if K is not None:
        K = _matrix("K", K)
        if K.shape != (k, d):
            raise ValueError(f"K must have shape (inputs, states) = {(k, d)}, got {K.shape}")
    return A, B, Q, R, Sigma0, K


def spectral_radius(M):
    """Largest absolute eigenvalue of a square matrix."""
    M = np.asarray(M, dtype=float)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"spectral_radius needs a square matrix, got shape {M.shape}")
    return float(np.max(np.abs(np.linalg.eigvals(M)))) if M.size else 0.0


def is_stabilizing(A, B, K):
    """True when the closed loop ``A - B K`` has spectral radius < 1 (so every cost is finite)."""
    A, B, _, _, _, K = _system(A, B, K=K)
    return spectral_radius(A - B @ K) < 1.0


def _require_stable(A, B, K):
    rho = spectral_radius(A - B @ K)
    if not rho < 1.0:
        raise ValueError(
            f"K is not stabilising: the closed loop A - B K has spectral radius {rho:.6g} >= 1, "
            "so the cost is infinite; start from a stabilising gain (e.g. scale K toward the optimal gain)"
        )
    return A - B @ K


# --------------------------------------------------------------------------------------------
# Exact quantities
# --------------------------------------------------------------------------------------------

def riccati(A, B, Q, R, tol=1e-12, max_iter=200):
    """The stabilising solution P of the discrete algebraic Riccati equation (Kalman 1960)

        P = Q + A' P A - A' P B (R + B' P B)^{-1} B' P A,

    by the structure-preserving doubling algorithm (E. K.-W. Chu and co-authors), which needs no
    stabilising initial gain and converges quadratically. Needs (A, B) stabilisable and
    (A, Q^{1/2}) detectable; raises ``ValueError`` when the iteration does not settle.
    """
    A, B, Q, R, _, _ = _system(A, B, Q, R)
    d = A.shape[0]
    Ak, Gk, Hk = A.copy(), B @ np.linalg.solve(R, B.T), Q.copy()
    eye = np.eye(d)
    for _ in range(int(max_iter)):
        if not (np.all(np.isfinite(Gk)) and np.all(np.isfinite(Ak))) or np.abs(Hk).max() > 1e150:
            break
        W = eye + Gk @ Hk
        # A_{k+1} = A_k W^{-1} A_k, G_{k+1} = G_k + A_k W^{-1} G_k A_k', H_{k+1} = H_k + A_k' H_k W^{-1} A_k
        WA = np.linalg.solve(W, Ak)
        WG = np.linalg.solve(W, Gk)
        H_next = Hk + Ak.T @ Hk @ WA
        Gk = Gk + Ak @ WG @ Ak.T
        Ak = Ak @ WA
        Gk, H_next = (Gk + Gk.T) / 2, (H_next + H_next.T) / 2
        if not np.all(np.isfinite(H_next)):
            break
        done = np.linalg.norm(H_next - Hk) <= tol * max(1.0, np.linalg.norm(H_next))
        Hk = H_next
        if done:
            break
    P = Hk
    residual = np.inf
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging iteration is reported below
        if np.all(np.isfinite(P)):
            residual = np.linalg.norm(_riccati_map(P, A, B, Q, R) - P) / max(1.0, np.linalg.norm(P))
    if not residual < 1e-8:
        raise ValueError(
            "the Riccati iteration did not converge (residual "
            f"{residual:.3g}); check that (A, B) is stabilisable and (A, Q^(1/2)) detectable"
        )
    return P


def _riccati_map(P, A, B, Q, R):
    BP = B.T @ P
    return Q + A.T @ P @ A - A.T @ P @ B @ np.linalg.solve(R + BP @ B, BP @ A)


def optimal_gain(A, B, Q, R):
    """The optimal static gain K* = (R + B' P B)^{-1} B' P A with P from :func:`riccati` (u = -K* x)."""
    A, B, Q, R, _, _ = _system(A, B, Q, R)
    P = riccati(A, B, Q, R)
    return np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)


def state_covariance(K, A, B, Sigma0):
    """Sigma_K = sum_t E[x_t x_t'] = sum_t M^t Sigma0 (M')^t, M = A - B K (a Lyapunov equation)."""
    A, B, _, _, Sigma0, K = _system(A, B, Sigma0=Sigma0, K=K)
    M = _require_stable(A, B, K)
    S = scipy.linalg.solve_discrete_lyapunov(M, Sigma0)
    return (S + S.T) / 2


def value_matrix(K, A, B, Q, R):
    """P_K with x' P_K x = sum_t x_t'(Q + K'RK)x_t from x_0 = x (solves P = Q + K'RK + M'PM)."""
    A, B, Q, R, _, K = _system(A, B, Q, R, K=K)
    M = _require_stable(A, B, K)
    P = scipy.linalg.solve_discrete_lyapunov(M.T, Q + K.T @ R @ K)
    return (P + P.T) / 2


def cost(K, A, B, Q, R, Sigma0):
    """C(K) = tr(P_K Sigma0), exactly. Raises ``ValueError`` (naming the spectral radius) when
    A - B K is not stable, since the cost is then infinite."""
    A, B, Q, R, Sigma0, K = _system(A, B, Q, R, Sigma0, K)
    return float(np.trace(value_matrix(K, A, B, Q, R) @ Sigma0))


def _parts(K, A, B, Q, R, Sigma0):
    """(C, grad, Sigma_K, P_K, R + B'P_K B) at a stabilising K (inputs already validated)."""
    M = _require_stable(A, B, K)
    P = scipy.linalg.solve_discrete_lyapunov(M.T, Q + K.T @ R @ K)
    P = (P + P.T) / 2
    S = scipy.linalg.solve_discrete_lyapunov(M, Sigma0)
    S = (S + S.T) / 2
    G = R + B.T @ P @ B
    E = G @ K - B.T @ P @ A
    return float(np.trace(P @ Sigma0)), 2.0 * E @ S, S, P, G


def policy_gradient(K, A, B, Q, R, Sigma0):
    """The exact policy gradient (Fazel et al. 2018, Lemma 1):
    grad C(K) = 2 ((R + B' P_K B) K - B' P_K A) Sigma_K."""
    A, B, Q, R, Sigma0, K = _system(A, B, Q, R, Sigma0, K)
    return _parts(K, A, B, Q, R, Sigma0)[1]


def _check_lr(lr):
    try:
        lr = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"lr must be a positive number, got {lr!r}") from None
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr (step size) must be a positive finite number, got {lr}")
    return lr


def _direction(method, K, A, B, Q, R, Sigma0):
    c, g, S, _, G = _parts(K, A, B, Q, R, Sigma0)
    if method == "gd":
        return c, g, g
    nat = np.linalg.solve(S, g.T).T  # grad Sigma_K^{-1} (Sigma_K symmetric)
    if method == "natural":
        return c, g, nat
    return c, g, np.linalg.solve(G, nat)


def gradient_step(K, A, B, Q, R, Sigma0, lr):
    """K - lr * grad C(K)."""
    A, B, Q, R, Sigma0, K = _system(A, B, Q, R, Sigma0, K)
    return K - _check_lr(lr) * _direction("gd", K, A, B, Q, R, Sigma0)[2]


def natural_gradient_step(K, A, B, Q, R, Sigma0, lr):
    """K - lr * grad C(K) Sigma_K^{-1} (the natural policy gradient; equals K - 2 lr E_K)."""
    A, B, Q, R, Sigma0, K = _system(A, B, Q, R, Sigma0, K)
    if np.linalg.eigvalsh(Sigma0).min() <= 0:
        raise ValueError("the natural gradient needs Sigma0 positive definite (Sigma_K must be invertible)")
    return K - _check_lr(lr) * _direction("natural", K, A, B, Q, R, Sigma0)[2]


def gauss_newton_step(K, A, B, Q, R, Sigma0, lr):
    """K - lr * (R + B' P_K B)^{-1} grad C(K) Sigma_K^{-1}. With lr = 1/2 this is policy iteration
    (Hewer 1971): K <- (R + B'P_K B)^{-1} B' P_K A."""
    A, B, Q, R, Sigma0, K = _system(A, B, Q, R, Sigma0, K)
    if np.linalg.eigvalsh(Sigma0).min() <= 0:
        raise ValueError("the Gauss-Newton step needs Sigma0 positive definite (Sigma_K must be invertible)")
    return K - _check_lr(lr) * _direction("gauss_newton", K, A, B, Q, R, Sigma0)[2]


def theorem_step(method, K0, A, B, Q, R, Sigma0):
    """The step size of Fazel et al.'s Theorem 7 (Gauss-Newton) and 8 (natural gradient), converted
    to this module's convention (gradient with its factor 2, so lr = eta_paper / 2):

    - Gauss-Newton: eta = 1, lr = 1/2;
    - natural gradient: eta = 1 / (||R|| + ||B||^2 C(K0) / mu), mu = sigma_min(Sigma0).

    Plain gradient descent has only a polynomial step bound in the paper (Theorem 9); it is not
    returned here. Returns ``(lr, rate)`` with ``rate`` the guaranteed per-step contraction factor
    of C(K) - C*, using ||Sigma_K*|| from the optimal gain.
    """
    method = _method(method)
    A, B, Q, R, Sigma0, K0 = _system(A, B, Q, R, Sigma0, K0)
    mu = float(np.linalg.eigvalsh(Sigma0).min())
    if mu <= 0:
        raise ValueError("the theorems need Sigma0 positive definite")
    Kstar = optimal_gain(A, B, Q, R)
    s_star = float(np.linalg.norm(state_covariance(Kstar, A, B, Sigma0), 2))
    if method == "gauss_newton":
        eta = 1.0
        rate = 1.0 - eta * mu / s_star
    elif method == "natural":
        c0 = cost(K0, A, B, Q, R, Sigma0)
        eta = 1.0 / (np.linalg.norm(R, 2) + np.linalg.norm(B, 2) ** 2 * c0 / mu)
        rate = 1.0 - eta * mu * float(np.linalg.eigvalsh(R).min()) / s_star
    else:
        raise ValueError("the paper gives an explicit step only for 'natural' and 'gauss_newton'")
    return eta / 2.0, rate


def _method(method):
    key = str(method).lower()
    if key not in METHODS:
        raise ValueError(f"method must be one of 'gd', 'natural', 'gauss_newton', got {method!r}")
    return METHODS[key]


@dataclass
class OptimizeResult:
    """What :func:`optimize` returns. ``costs[t]`` is C(K_t); ``gaps`` = costs - C*.

    ``status`` is ``"converged"`` (gap below ``tol``), ``"max_steps"`` or ``"left_stabilising_set"``
    (the step to K_{t+1} made the closed loop unstable; K is then the last stabilising gain and
    ``rho_exit`` the spectral radius the rejected step would have had)."""

    method: str
    lr: float
    K: np.ndarray
    costs: np.ndarray
    gaps: np.ndarray
    c_star: float
    grad_norms: np.ndarray
    status: str
    steps: int
    rho_exit: float = float("nan")
    Ks: list = field(default_factory=list, repr=False)

    @property
    def left_stabilising_set(self) -> bool:
        return self.status == "left_stabilising_set"

    @property
    def message(self) -> str:
        if self.left_stabilising_set:
            return (f"{METHOD_LABELS[self.method]}, step {self.lr:g}: step {self.steps + 1} left the stabilising set "
                    f"(spectral radius {self.rho_exit:.3g})")
        return f"{METHOD_LABELS[self.method]}, step {self.lr:g}: {self.status} after {self.steps} steps"


def optimize(K0, method, lr, steps, A, B, Q, R, Sigma0, *, tol=0.0, mask=None, keep_iterates=False):
    """Run ``steps`` updates of ``method`` ('gd', 'natural' or 'gauss_newton') from a stabilising K0.

    Records C(K_t) at every step; stops early when C(K_t) - C* <= ``tol`` or when a step would leave
    the set of stabilising gains (reported in ``status``, never raised). ``mask`` (a 0/1 array of
    K's shape) restricts K to a sparsity pattern: the step is projected onto it (projected gradient
    for structured controllers, as in Lin, Fardad & Jovanovic 2011); C* is then still the
    unstructured optimum, so the gap stays positive.
    """
    method = _method(method)
    lr = _check_lr(lr)
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    A, B, Q, R, Sigma0, K = _system(A, B, Q, R, Sigma0, K0)
    if method != "gd" and np.linalg.eigvalsh(Sigma0).min() <= 0:
        raise ValueError(f"method {method!r} needs Sigma0 positive definite")
    if mask is not None:
        mask = np.asarray(mask, dtype=float)
        if mask.shape != K.shape or not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"mask must be a 0/1 array of shape {K.shape}")
        K = K * mask
    _require_stable(A, B, K)
    c_star = float(np.trace(riccati(A, B, Q, R) @ Sigma0))
    costs, grads, Ks = [], [], []
    status, rho_exit = "max_steps", float("nan")
    t = 0
    while True:
        c, g, direction = _direction(method, K, A, B, Q, R, Sigma0)
        if mask is not None:
            g, direction = g * mask, direction * mask
        costs.append(c)
        grads.append(float(np.linalg.norm(g)))
        if keep_iterates:
            Ks.append(K.copy())
        if c - c_star <= tol:
            status = "converged"
            break
        if t >= steps:
            break
        K_new = K - lr * direction
        rho = spectral_radius(A - B @ K_new) if np.all(np.isfinite(K_new)) else np.inf
        if not rho < 1.0:
            status, rho_exit = "left_stabilising_set", float(rho)
            break
        K, t = K_new, t + 1
    costs = np.array(costs)
    return OptimizeResult(method, lr, K, costs, costs - c_star, c_star, np.array(grads), status, t, rho_exit, Ks)


# --------------------------------------------------------------------------------------------
# Model-free: costs of simulated rollouts only
# --------------------------------------------------------------------------------------------

def _sample_x0(rng, n, d, Sigma0):
    if Sigma0 is None:
        return rng.standard_normal((n, d))
    L = np.linalg.cholesky(Sigma0 + 1e-14 * np.eye(d))
    return rng.standard_normal((n, d)) @ L.T


def rollout_costs(Ks, A, B, Q, R, x0, horizon):
    """Finite-horizon costs sum_{t<horizon} x_t'Qx_t + u_t'Ru_t of gains ``Ks`` (shape (n, k, d)) from
    initial states ``x0`` (shape (n, d)), one rollout per pair, simulated in a batch. A rollout whose
    state overflows gets cost ``inf``."""
    A, B, Q, R, _, _ = _system(A, B, Q, R)
    Ks = np.asarray(Ks, dtype=float)
    x = np.array(x0, dtype=float)
    d, k = B.shape
    if Ks.ndim != 3 or Ks.shape[1:] != (k, d):
        raise ValueError(f"Ks must have shape (n, {k}, {d}), got {Ks.shape}")
    if x.shape != (Ks.shape[0], d):
        raise ValueError(f"x0 must have shape ({Ks.shape[0]}, {d}), got {x.shape}")
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    total = np.zeros(len(x))
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(int(horizon)):
            u = -np.einsum("nkd,nd->nk", Ks, x)
            total += np.einsum("nd,de,ne->n", x, Q, x) + np.einsum("nk,kl,nl->n", u, R, u)
            x = x @ A.T + u @ B.T
    total[~np.isfinite(total)] = np.inf
    return total


def _sphere(rng, n, shape, radius):
    U = rng.standard_normal((n, *shape))
    U *= radius / np.sqrt((U ** 2).sum(axis=(1, 2), keepdims=True))
    return U


def zeroth_order_gradient(K, A, B, Q, R, rollouts, horizon, radius, seed, *, Sigma0=None,
                          estimator="one-point"):
    """Estimate grad C(K) from simulated rollout costs only (Fazel et al. 2018, Algorithm 1).

    Draw U_i uniformly from the Frobenius sphere of radius r in K's space (dimension D = k d),
    an initial state x_i ~ N(0, Sigma0) (standard normal when ``Sigma0`` is None) and

    - ``"one-point"`` (the paper's): g = (1/m) sum_i (D / r^2) c_i U_i, c_i the cost of K + U_i;
    - ``"two-point"``: g = (1/m) sum_i (D / (2 r^2)) (c_i^+ - c_i^-) U_i, the costs of K +- U_i
      from the same x_i (common random numbers cancel most of the noise).

    Both estimate the gradient of the ball-smoothed cost C_r(K) = E_V C(K + r V) (V uniform in
    the unit ball), so the bias is O(r^2) for smooth C; the model (A, B) is used only to simulate.
    """
    A, B, Q, R, Sigma0, K = _system(A, B, Q, R, Sigma0, K)
    m = int(rollouts)
    if m != rollouts or m < 1:
        raise ValueError(f"rollouts must be a positive integer, got {rollouts!r}")
    radius = float(radius)
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be positive, got {radius}")
    if estimator not in ("one-point", "two-point"):
        raise ValueError(f"estimator must be 'one-point' or 'two-point', got {estimator!r}")
    rng = np.random.default_rng(seed)
    k, d = K.shape
    D = k * d
    U = _sphere(rng, m, K.shape, radius)
    x0 = _sample_x0(rng, m, d, Sigma0)
    if estimator == "one-point":
        c = rollout_costs(K[None] + U, A, B, Q, R, x0, horizon)
        weights = D / radius ** 2 * c
    else:
        c = rollout_costs(np.concatenate([K[None] + U, K[None] - U]), A, B, Q, R, np.concatenate([x0, x0]), horizon)
        weights = D / (2 * radius ** 2) * (c[:m] - c[m:])
    if not np.all(np.isfinite(weights)):
        return np.full(K.shape, np.nan)  # a perturbed gain blew up: reported, not averaged
    return np.einsum("n,nkd->kd", weights, U) / m


@dataclass
class ModelFreeResult:
    """What :func:`model_free_optimize` returns. ``costs`` are exact C(K_t), computed with the
    model for reporting only (the iteration sees rollout costs alone)."""

    K: np.ndarray
    costs: np.ndarray
    gaps: np.ndarray
    c_star: float
    status: str
    steps: int
    rollouts_used: int


def model_free_optimize(K0, A, B, Q, R, Sigma0, lr, steps, rollouts, horizon, radius, seed, *,
                        estimator="two-point"):
    """Gradient descent K <- K - lr g_t with g_t from :func:`zeroth_order_gradient` (fresh samples each
    step, seeds derived from ``seed``). Stops, and says so in ``status``, if an estimate is not finite
    or a step leaves the stabilising set."""
    A, B, Q, R, Sigma0, K = _system(A, B, Q, R, Sigma0, K0)
    lr = _check_lr(lr)
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    _require_stable(A, B, K)
    c_star = float(np.trace(riccati(A, B, Q, R) @ Sigma0))
    seeds = np.random.SeedSequence(seed).spawn(int(steps))
    costs = [cost(K, A, B, Q, R, Sigma0)]
    status, t = "max_steps", 0
    per_step = rollouts * (2 if estimator == "two-point" else 1)
    for t in range(int(steps)):
        g = zeroth_order_gradient(K, A, B, Q, R, rollouts, horizon, radius, np.random.default_rng(seeds[t]),
                                  Sigma0=Sigma0, estimator=estimator)
        if not np.all(np.isfinite(g)):
            status = "estimate_not_finite"
            break
        K_new = K - lr * g
        if not spectral_radius(A - B @ K_new) < 1:
            status = "left_stabilising_set"
            break
        K = K_new
        costs.append(cost(K, A, B, Q, R, Sigma0))
    else:
        t = int(steps)
    costs = np.array(costs)
    n = len(costs) - 1
    return ModelFreeResult(K, costs, costs - c_star, c_star, status if n < steps else "max_steps", n,
                           n * per_step)


# --------------------------------------------------------------------------------------------
# Experiments of the chapter
# --------------------------------------------------------------------------------------------

def gradient_domination_ratios(A, B, Q, R, Sigma0, n=200, seed=0, spread=1.0):
    """For ``n`` random stabilising K, the ratio of C(K) - C* to the paper's gradient-domination
    bound (Lemma 11): ||Sigma_K*|| / (sigma_min(Sigma0)^2 sigma_min(R)) * ||grad C(K)||_F^2.
    The lemma says every ratio is <= 1; with the factor 2 in the gradient kept, the proof gives <= 1/4."""
    A, B, Q, R, Sigma0, _ = _system(A, B, Q, R, Sigma0)
    mu = float(np.linalg.eigvalsh(Sigma0).min())
    if mu <= 0:
        raise ValueError("gradient domination needs Sigma0 positive definite")
    Kstar = optimal_gain(A, B, Q, R)
    c_star = cost(Kstar, A, B, Q, R, Sigma0)
    s_star = float(np.linalg.norm(state_covariance(Kstar, A, B, Sigma0), 2))
    const = s_star / (mu ** 2 * float(np.linalg.eigvalsh(R).min()))
    rng = np.random.default_rng(seed)
    ratios, gaps = [], []
    while len(ratios) < n:
        K = Kstar + rng.uniform(0, spread) * rng.standard_normal(Kstar.shape)
        if not spectral_radius(A - B @ K) < 0.995:
            continue
        c, g, *_ = _parts(K, A, B, Q, R, Sigma0)
        bound = const * float(np.sum(g ** 2))
        if bound <= 1e-12:
            continue
        ratios.append((c - c_star) / bound)
        gaps.append(c - c_star)
    return np.array(ratios), np.array(gaps)


def smoothing_bias(K, A, B, Q, R, Sigma0, radius, samples, seed):
    """Relative bias ||E g_r - grad C(K)|| / ||grad C(K)|| of the two-point sphere estimator with exact
    costs, estimated with a control variate: E[(D/2r^2)(C(K+U) - C(K-U) - 2<grad C, U>) U] is the
    bias exactly (the linear term has mean grad C), and its variance is O(r^4), so few samples do."""
    A, B, Q, R, Sigma0, K = _system(A, B, Q, R, Sigma0, K)
    rng = np.random.default_rng(seed)
    g = policy_gradient(K, A, B, Q, R, Sigma0)
    D = K.size
    U = _sphere(rng, int(samples), K.shape, float(radius))
    cp = _batch_cost(K[None] + U, A, B, Q, R, Sigma0)
    cm = _batch_cost(K[None] - U, A, B, Q, R, Sigma0)
    if not (np.all(np.isfinite(cp)) and np.all(np.isfinite(cm))):
        raise ValueError(f"radius {radius} is too large: some K +- U are not stabilising; use a smaller radius")
    lin = 2 * np.einsum("kd,nkd->n", g, U)
    bias = np.einsum("n,nkd->kd", D / (2 * radius ** 2) * (cp - cm - lin), U) / len(U)
    return float(np.linalg.norm(bias) / np.linalg.norm(g))


def finite_difference_gradient(K, A, B, Q, R, Sigma0, h=1e-5):
    """Central finite differences of :func:`cost`, entry by entry (a reference for the exact gradient)."""
    A, B, Q, R, Sigma0, K = _system(A, B, Q, R, Sigma0, K)
    out = np.zeros_like(K)
    for idx in np.ndindex(*K.shape):
        E = np.zeros_like(K)
        E[idx] = h
        out[idx] = (cost(K + E, A, B, Q, R, Sigma0) - cost(K - E, A, B, Q, R, Sigma0)) / (2 * h)
    return out


def gradient_check(systems=4, gains=3, seed=0):
    """Worst relative error ||grad - finite differences|| / ||grad|| over random stabilising gains of the
    planning system and ``systems`` random systems (mixed sizes)."""
    rng = np.random.default_rng(seed)
    cases = [planning_system()[:5]] + [random_system(d, k, seed=seed + i, scale=1.1)
                                       for i, (d, k) in enumerate([(3, 2), (4, 2), (2, 1), (4, 3)][:int(systems)])]
    worst = 0.0
    for A, B, Q, R, S0 in cases:
        Kstar = optimal_gain(A, B, Q, R)
        n = 0
        while n < gains:
            K = Kstar + 0.3 * rng.standard_normal(Kstar.shape)
            if spectral_radius(A - B @ K) < 0.95:
                g = policy_gradient(K, A, B, Q, R, S0)
                fd = finite_difference_gradient(K, A, B, Q, R, S0)
                worst = max(worst, float(np.linalg.norm(g - fd) / np.linalg.norm(g)))
                n += 1
    return worst


def linear_rate(gaps, start=0, stop=None):
    """The geometric rate q in gap_t ~ q^t fitted (least squares on log gap) over t in [start, stop)."""
    gaps = np.asarray(gaps, dtype=float)[start:stop]
    keep = gaps > 0
    t = np.arange(len(gaps))[keep]
    if len(t) < 2:
        raise ValueError("need at least two positive gaps to fit a rate")
    return float(np.exp(np.polyfit(t, np.log(gaps[keep]), 1)[0]))


@dataclass
class SegmentResult:
    """Costs and closed-loop spectral radii along K(t) = K* + t (K - K*), t in [0, 1]."""

    system: tuple
    system_seed: int
    K_star: np.ndarray
    K: np.ndarray
    t: np.ndarray
    costs: np.ndarray
    rho: np.ndarray

    @property
    def leaves_stabilising_set(self) -> bool:
        return bool(np.max(self.rho) >= 1.0)


def segment(A, B, Q, R, Sigma0, K, n=201):
    """C and the spectral radius of A - B K(t) along the segment from K* to ``K``."""
    A, B, Q, R, Sigma0, K = _system(A, B, Q, R, Sigma0, K)
    Kstar = optimal_gain(A, B, Q, R)
    t = np.linspace(0.0, 1.0, int(n))
    Ks = Kstar[None] + t[:, None, None] * (K - Kstar)[None]
    rho = np.array([spectral_radius(A - B @ Kt) for Kt in Ks])
    return SegmentResult((A, B, Q, R, Sigma0), -1, Kstar, K, t, _batch_cost(Ks, A, B, Q, R, Sigma0), rho)


def star_convexity_search(d=3, systems=100, gains=200, seed=0, scale=1.2, spread=3.0):
    """Search random systems (:func:`random_system` with seeds seed, seed+1, ...) for a stabilising K whose
    segment to K* leaves the stabilising set: then C (infinite there) is not star-convex around K*.
    Returns the first such :class:`SegmentResult`, or None when none is found."""
    for s in range(seed, seed + int(systems)):
        A, B, Q, R, S0 = random_system(d, seed=s, scale=scale)
        try:
            Kstar = optimal_gain(A, B, Q, R)
        except ValueError:
            continue
        rng = np.random.default_rng(s)
        cands = Kstar[None] + rng.uniform(0, spread, (int(gains), 1, 1)) * rng.standard_normal((int(gains), *Kstar.shape))
        t = np.linspace(0.0, 1.0, 21)  # a coarse screen; the segment found is then evaluated finely
        # closed loops along every candidate segment at once: (gains, t, d, d)
        M = (A - B @ Kstar)[None, None] - t[None, :, None, None] * np.einsum("dk,gke->gde", B, cands - Kstar)[:, None]
        rho = np.abs(np.linalg.eigvals(M)).max(axis=-1)
        bad = np.flatnonzero((rho[:, -1] < 1) & (rho.max(axis=1) >= 1))
        if bad.size:
            res = segment(A, B, Q, R, S0, cands[bad[0]], n=201)
            res.system_seed = s
            return res
    return None


def _batch_cost(Ks, A, B, Q, R, Sigma0):
    """Exact C(K) for a batch of gains (small d): vec Sigma_K = (I - M (x) M)^{-1} vec Sigma0."""
    d = A.shape[0]
    M = A[None] - np.einsum("dk,nke->nde", B, Ks)
    kron = np.einsum("nij,nkl->nikjl", M, M).reshape(len(Ks), d * d, d * d)
    S = np.linalg.solve(np.eye(d * d)[None] - kron, np.broadcast_to(Sigma0.reshape(-1), (len(Ks), d * d))[..., None])
    S = S.reshape(len(Ks), d, d)
    stage = Q[None] + np.einsum("nki,kl,nlj->nij", Ks, R, Ks)
    out = np.einsum("nij,nji->n", stage, S)
    rho = np.max(np.abs(np.linalg.eigvals(M)), axis=1)
    out[rho >= 1] = np.inf
    return out


def estimator_errors(K, A, B, Q, R, Sigma0, rollouts_list, radius, horizon, seed, repeats=5,
                     estimator="two-point"):
    """Mean relative error ||g_hat - grad C(K)|| / ||grad C(K)|| over ``repeats`` independent estimates,
    for each number of rollouts in ``rollouts_list``."""
    A, B, Q, R, Sigma0, K = _system(A, B, Q, R, Sigma0, K)
    g = policy_gradient(K, A, B, Q, R, Sigma0)
    seeds = np.random.SeedSequence(seed).spawn(len(rollouts_list) * repeats)
    errs = []
    for i, m in enumerate(rollouts_list):
        e = [np.linalg.norm(zeroth_order_gradient(K, A, B, Q, R, m, horizon, radius,
                                                  np.random.default_rng(seeds[i * repeats + j]),
                                                  Sigma0=Sigma0, estimator=estimator) - g)
             for j in range(repeats)]
        errs.append(float(np.mean(e)) / float(np.linalg.norm(g)))
    return np.array(errs)


def cost_slice(A, B, Q, R, Sigma0, K_centre, E1, E2, span=1.0, n=81):
    """C(K_centre + a E1 + b E2) on an n x n grid of (a, b) in [-span, span]^2; ``inf`` where the gain
    is not stabilising. Returns ``(a, b, C)``."""
    A, B, Q, R, Sigma0, K_centre = _system(A, B, Q, R, Sigma0, K_centre)
    a = np.linspace(-span, span, int(n))
    aa, bb = np.meshgrid(a, a, indexing="xy")
    Ks = K_centre[None] + aa.reshape(-1, 1, 1) * np.asarray(E1)[None] + bb.reshape(-1, 1, 1) * np.asarray(E2)[None]
    C = _batch_cost(Ks, A, B, Q, R, Sigma0).reshape(aa.shape)
    C[~np.isfinite(C) | (C < 0)] = np.inf
    return a, a, C


def closed_loop_trajectory(K, A, B, x0, steps=30):
    """States x_0, ..., x_steps of x_{t+1} = (A - B K) x_t (array of shape (steps + 1, d))."""
    A, B, _, _, _, K = _system(A, B, K=K)
    x = np.asarray(x0, dtype=float)
    out = [x]
    M = A - B @ K
    for _ in range(int(steps)):
        x = M @ x
        out.append(x)
    return np.array(out)


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------

def plot_gaps(results, title="", theory=None):
    """C(K_t) - C* against t on a log scale, one line per :class:`OptimizeResult`."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for r in results:
        gaps = np.maximum(r.gaps, 1e-16)
        ax.semilogy(np.arange(len(gaps)), gaps, marker="o" if len(gaps) < 12 else None, ms=4,
                    label=f"{METHOD_LABELS[r.method]} (step {r.lr:.3g})")
    if theory is not None:
        t, bound, label = theory
        ax.semilogy(t, bound, "k--", lw=1, label=label)
    ax.set_xlabel("iteration t")
    ax.set_ylabel(r"$C(K_t) - C^*$")
    ax.set_title(title)
    ax.legend()
    return fig


def plot_slice(a, b, C, c_star, title=""):
    """Filled contours of log(C - C* + 1) on a 2-D slice; white where K is not stabilising."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 3.8), layout="constrained")
    ax = fig.add_subplot()
    Z = np.where(np.isfinite(C), np.log10(np.maximum(C - c_star, 0) + 1e-3), np.nan)
    cs = ax.contourf(a, b, Z, levels=20, cmap="viridis")
    ax.contour(a, b, np.isfinite(C).astype(float), levels=[0.5], colors="k", linewidths=1.2)
    fig.colorbar(cs, ax=ax, label=r"$\log_{10}(C(K) - C^*)$")
    ax.set_xlabel("a")
    ax.set_ylabel("b")
    ax.set_title(title)
    return fig


def plot_estimators(ms, errs, radii, biases):
    """Left: relative error of the estimators against the number of rollouts; right: bias against r."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for label, e in errs.items():
        ax1.loglog(ms, e, "o-", label=label)
    ref = errs[next(iter(errs))]
    ax1.loglog(ms, ref[0] * np.sqrt(ms[0] / np.asarray(ms)), "k--", lw=1, label=r"$\propto m^{-1/2}$")
    ax1.set_xlabel("rollouts m")
    ax1.set_ylabel("relative error")
    ax1.legend()
    ax2.loglog(radii, biases, "o-", label="two-point bias (exact costs)")
    ax2.loglog(radii, biases[-1] * (np.asarray(radii) / radii[-1]) ** 2, "k--", lw=1, label=r"$\propto r^2$")
    ax2.set_xlabel("smoothing radius r")
    ax2.set_ylabel("relative bias")
    ax2.legend()
    return fig


# --------------------------------------------------------------------------------------------
# Widget: step size and method -> cost curve and closed-loop trajectory
# --------------------------------------------------------------------------------------------

WIDGET_STEPS = 40
WIDGET_LRS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)


def widget_compute(method="gd", lr=0.01, steps=WIDGET_STEPS):
    """Run ``method`` with step ``lr`` from K0 = 0.2 I on the planning system; also the closed-loop
    trajectories of K0 and of the final gain from x0 = (1, 1, 1)."""
    A, B, Q, R, S0, K0 = planning_system()
    res = optimize(K0, method, lr, steps, A, B, Q, R, S0)
    x0 = np.ones(3)
    return {"result": res, "traj0": closed_loop_trajectory(K0, A, B, x0, 25),
            "traj": closed_loop_trajectory(res.K, A, B, x0, 25),
            "traj_star": closed_loop_trajectory(optimal_gain(A, B, Q, R), A, B, x0, 25)}


def widget_plot(out):
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

    res = out["result"]
    # a fixed layout and few log ticks: tick-label text dominates the drawing time of each frame
    fig = Figure(figsize=(8.0, 3.2))
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.15, top=0.9, wspace=0.3)
    ax1, ax2 = fig.subplots(1, 2)
    gaps = np.maximum(res.gaps, 1e-16)
    ax1.semilogy(np.arange(len(gaps)), gaps, color="#1f77b4")
    ax1.set_ylim(1e-16, 10)
    ax1.yaxis.set_major_locator(FixedLocator([1e-15, 1e-10, 1e-5, 1.0]))
    ax1.yaxis.set_major_formatter(FixedFormatter(["1e-15", "1e-10", "1e-5", "1"]))  # plain text: no mathtext
    ax1.yaxis.set_minor_locator(NullLocator())
    ax1.set_xlim(0, WIDGET_STEPS)
    ax1.set_xlabel("iteration t")
    ax1.set_ylabel("C(K_t) - C*")
    ax1.set_title(f"{METHOD_LABELS[res.method]}, step {res.lr:g}")
    if res.left_stabilising_set:
        ax1.text(0.5, 0.5, f"step {res.steps + 1} left the\nstabilising set\n(spectral radius {res.rho_exit:.3g})",
                 transform=ax1.transAxes, ha="center", va="center", color="#b00020")
    t = np.arange(len(out["traj"]))
    ax2.plot(t, np.linalg.norm(out["traj0"], axis=1), color="#7f7f7f", label="K_0 = 0.2 I")
    ax2.plot(t, np.linalg.norm(out["traj"], axis=1), color="#1f77b4", label=f"K_{res.steps}")
    ax2.plot(t, np.linalg.norm(out["traj_star"], axis=1), "k--", lw=1, label="K*")
    ax2.set_xlabel("time t")
    ax2.set_ylabel("|x_t| from x_0 = (1, 1, 1)")
    ax2.legend()
    return fig


@widgets.register("ch05-policy-gradient")
def widget_spec():
    """Method x step size on the planning system: the cost gap and the closed-loop state norm."""
    return widgets.Spec(
        widget_compute, widget_plot,
        {"method": ["gd", "natural", "gauss_newton"], "lr": list(WIDGET_LRS)},
        title="Policy gradient on the 3-state LQR: method and step size",
        default={"method": "gd", "lr": 0.01},
        labels={"method": "method", "lr": "step size"},
    )
