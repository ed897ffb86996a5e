"""What gradient methods can and cannot learn or optimise: the experiments of Vempala's talk.

- The hard family of Song, Vempala, Wilmes & Xie (NeurIPS 2017): a smooth "wave" of a subset
  sum, ``y = cos(omega * sum_{i in S} x_i / sqrt|S|)``; statistical-query algorithms (gradient
  methods included) need exponentially many queries once ``omega`` is large
  (:func:`subset_wave_data`, :func:`train_mlp`).
- The positive result of Vempala & Wilmes (COLT 2019): on the sphere, gradient descent on the
  output layer of a net with unbiased activations learns each spherical-harmonic degree ``k``
  at the rate set by the Funk-Hecke coefficient ``lambda_k`` of the activation's kernel
  (:func:`relu_kernel_harmonic_coefficients`, :func:`gd_harmonic_residuals`).
- Approximately convex functions: simulated annealing (Kalai & Vempala 2006; Belloni, Liang,
  Narayanan & Rakhlin, COLT 2015) versus gradient descent (:func:`simulated_annealing`,
  :func:`gradient_descent`, :func:`rippled_quadratic`).

Everything is numpy (float64); nothing imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from helpers import repro

# ---------------------------------------------------------------- the hard family


@dataclass
class WaveData:
    """Samples ``X`` (Gaussian, ``samples x n``) and labels ``y = cos(omega * <x_S> / sqrt|S|)``."""

    X: np.ndarray
    y: np.ndarray
    subset: np.ndarray
    omega: float

    @property
    def variance(self) -> float:
        """Var y in closed form: ``(1 - exp(-omega^2))^2 / 2`` (the subset sum is N(0, 1))."""
        return wave_variance(self.omega)

    @property
    def mean(self) -> float:
        """E y in closed form: ``exp(-omega^2 / 2)``."""
        return float(np.exp(-self.omega**2 / 2))


def wave_variance(omega: float) -> float:
    """Variance of ``cos(omega Z)`` for ``Z ~ N(0, 1)``: ``(1 - exp(-omega^2))^2 / 2``."""
    return float(np.expm1(-omega**2) ** 2 / 2)


def subset_wave_data(n: int, subset, omega: float, samples: int, seed=0) -> WaveData:
    """Draw ``x ~ N(0, I_n)`` and ``y = cos(omega * sum_{i in S} x_i / sqrt|S|)`` (Song et al. 2017).

    ``subset`` is either a sequence of distinct coordinates in ``range(n)`` or an integer ``s``,
    in which case a random subset of size ``s`` is drawn from ``seed``.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if not np.isfinite(omega) or omega < 0:
        raise ValueError(f"omega must be a finite number >= 0, got {omega}")
    rng = repro.rng(seed)
    if isinstance(subset, (int, np.integer)) and not isinstance(subset, bool):
        if not 1 <= subset <= n:
            raise ValueError(f"subset size must be in [1, n] = [1, {n}], got {subset}")
        S = np.sort(rng.choice(n, size=int(subset), replace=False))
    else:
        S = np.asarray(subset)
        if S.ndim != 1 or S.size == 0 or not np.issubdtype(S.dtype, np.integer):
            raise ValueError("subset must be a non-empty 1-d sequence of integer coordinates, or a size")
        if S.min() < 0 or S.max() >= n or np.unique(S).size != S.size:
            raise ValueError(f"subset must hold distinct coordinates in range({n}), got {S.tolist()}")
        S = np.sort(S)
    X = rng.standard_normal((int(samples), int(n)))
    y = np.cos(omega * X[:, S].sum(axis=1) / np.sqrt(S.size))
    return WaveData(X=X, y=y, subset=S, omega=float(omega))


@dataclass
class MLPResult:
    """A trained one-hidden-layer ReLU net: losses per epoch and the test error relative to Var y."""

    train_mse: np.ndarray  # per epoch (NaN after a divergence)
    test_mse: float
    test_var: float
    diverged: bool
    epochs_run: int

    @property
    def relative_test_mse(self) -> float:
        """Test MSE / test variance: 0 is perfect, 1 is no better than predicting the mean."""
        return self.test_mse / self.test_var if self.test_var > 0 else float("nan")


def train_mlp(X, y, X_test, y_test, width: int = 100, epochs: int = 30, lr: float = 0.05,
              batch: int = 32, momentum: float = 0.9, seed=0) -> MLPResult:
    """Minibatch SGD (with heavy-ball momentum) on the square loss of ``f(x) = a . relu(W x + b) + c``.

    He-initialised, numpy, float64. A non-finite loss stops training and sets ``diverged``.
    """
    X, y, X_test, y_test = (np.asarray(a, dtype=float) for a in (X, y, X_test, y_test))
    if X.ndim != 2 or X_test.ndim != 2 or X.shape[1] != X_test.shape[1]:
        raise ValueError(f"X and X_test must be 2-d with the same number of columns, got {X.shape}, {X_test.shape}")
    if y.shape != (X.shape[0],) or y_test.shape != (X_test.shape[0],):
        raise ValueError("y and y_test must be 1-d with one label per row of X / X_test")
    if width < 1 or epochs < 1 or batch < 1:
        raise ValueError("width, epochs and batch must be >= 1")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive step size, got {lr}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    rng = repro.rng(seed)
    N, d = X.shape
    W = rng.standard_normal((d, width)) * np.sqrt(2.0 / d)
    b = np.zeros(width)
    a = rng.standard_normal(width) * np.sqrt(1.0 / width)
    c = float(y.mean())
    params = [W, b, a]
    vel = [np.zeros_like(P) for P in params]
    vc = 0.0
    losses = np.full(epochs, np.nan)
    diverged = False
    run = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for ep in range(epochs):
            perm = rng.permutation(N)
            total = 0.0
            for s in range(0, N, batch):
                idx = perm[s:s + batch]
                xb, yb = X[idx], y[idx]
                h = xb @ W + b
                r = np.maximum(h, 0.0)
                err = r @ a + c - yb
                total += float(err @ err)
                g = err / idx.size  # d(loss)/d(output) for loss = mean(err^2) / 2
                ga = r.T @ g
                gh = np.outer(g, a) * (h > 0)
                grads = [xb.T @ gh, gh.sum(axis=0), ga]
                for P, V, G in zip(params, vel, grads):
                    V *= momentum
                    V -= lr * G
                    P += V
                vc = momentum * vc - lr * float(g.sum())
                c += vc
            run = ep + 1
            losses[ep] = total / N
            if not np.isfinite(losses[ep]):
                diverged = True
                losses[ep] = np.nan
                break
        pred = np.maximum(X_test @ W + b, 0.0) @ a + c
    test_mse = float(np.mean((pred - y_test) ** 2)) if not diverged else float("nan")
    return MLPResult(train_mse=losses, test_mse=test_mse, test_var=float(np.var(y_test)), diverged=diverged,
                     epochs_run=run)


@dataclass
class WaveSweep:
    omegas: np.ndarray
    relative_test_mse: np.ndarray  # (len(omegas), len(seeds))
    variance: np.ndarray  # closed form per omega


def wave_sweep(omegas, n: int = 20, subset: int = 10, samples: int = 4000, test: int = 2000,
               seeds=(0, 1, 2), **mlp_kwargs) -> WaveSweep:
    """Train :func:`train_mlp` on :func:`subset_wave_data` for each ``omega`` and seed."""
    omegas = np.asarray(omegas, dtype=float)
    if omegas.ndim != 1 or omegas.size == 0:
        raise ValueError("omegas must be a non-empty 1-d sequence")
    seeds = list(seeds)
    rel = np.empty((omegas.size, len(seeds)))
    for i, om in enumerate(omegas):
        for j, s in enumerate(seeds):
            S = np.arange(subset)  # which coordinates does not matter to the learner (it does not know S)
            tr = subset_wave_data(n, S, float(om), samples, seed=10_000 + 2 * s)
            te = subset_wave_data(n, S, float(om), test, seed=10_001 + 2 * s)
            # standardise the labels with the training statistics: the relative test error is unchanged by an
            # affine map of the labels, and SGD's step size then means the same thing for every omega
            mu, sd = tr.y.mean(), tr.y.std()
            res = train_mlp(tr.X, (tr.y - mu) / sd, te.X, (te.y - mu) / sd, seed=s, **mlp_kwargs)
            rel[i, j] = res.relative_test_mse
    return WaveSweep(omegas=omegas, relative_test_mse=rel, variance=np.array([wave_variance(o) for o in omegas]))


# ---------------------------------------------------------------- harmonics on the sphere


def sphere_area(m: int) -> float:
    """Surface area of the unit sphere S^m in R^{m+1}: ``2 pi^{(m+1)/2} / Gamma((m+1)/2)``."""
    return float(2 * np.pi ** ((m + 1) / 2) / special.gamma((m + 1) / 2))


def legendre_sphere(k: int, d: int, t):
    """The Legendre (Gegenbauer) polynomial of degree ``k`` in dimension ``d``, normalised to P(1) = 1.

    ``P_k^{(d)}(t) = C_k^{(d-2)/2}(t) / C_k^{(d-2)/2}(1)`` for ``d >= 3`` (the zonal harmonic of S^{d-1}).
    """
    if d < 3:
        raise ValueError(f"d must be >= 3 (the sphere S^(d-1) with d >= 3), got {d}")
    alpha = (d - 2) / 2
    return special.eval_gegenbauer(k, alpha, t) / special.eval_gegenbauer(k, alpha, 1.0)


def relu_kernel(t, d: int | None = None):
    """``E_w[relu(w.x) relu(w.y)]`` for unit ``x, y`` with ``x.y = t``.

    ``w ~ N(0, I)`` (``d=None``): the arc-cosine kernel of Cho & Saul,
    ``(sqrt(1 - t^2) + (pi - arccos t) t) / (2 pi)``; ``w`` uniform on S^{d-1}: the same divided by ``d``.
    """
    t = np.clip(np.asarray(t, dtype=float), -1.0, 1.0)
    val = (np.sqrt(1 - t**2) + (np.pi - np.arccos(t)) * t) / (2 * np.pi)
    return val / d if d is not None else val


def funk_hecke(f: Callable, d: int, kmax: int, nodes: int = 200) -> np.ndarray:
    """Funk-Hecke coefficients ``lambda_0..lambda_kmax`` of a zonal kernel ``K(x, y) = f(x . y)`` on S^{d-1}.

    ``lambda_k = (|S^{d-2}| / |S^{d-1}|) int_{-1}^{1} f(t) P_k^{(d)}(t) (1 - t^2)^{(d-3)/2} dt``: the eigenvalue
    of ``g -> E_y[f(x . y) g(y)]`` (``y`` uniform on the sphere) on every degree-``k`` harmonic.
    Gauss-Jacobi quadrature with weight ``(1 - t^2)^{(d-3)/2}``.
    """
    if not isinstance(d, (int, np.integer)) or d < 3:
        raise ValueError(f"d must be an integer >= 3, got {d!r}")
    if not isinstance(kmax, (int, np.integer)) or kmax < 0:
        raise ValueError(f"kmax must be a non-negative integer, got {kmax!r}")
    a = (d - 3) / 2
    t, w = special.roots_jacobi(nodes, a, a)
    ft = f(t)
    const = sphere_area(d - 2) / sphere_area(d - 1)
    return np.array([const * float(np.sum(w * ft * legendre_sphere(k, d, t))) for k in range(kmax + 1)])


def relu_kernel_harmonic_coefficients(d: int, kmax: int, nodes: int = 400) -> np.ndarray:
    """Funk-Hecke coefficients ``lambda_0..lambda_kmax`` of the unbiased ReLU kernel on S^{d-1}, by quadrature.

    The kernel is ``E_w[relu(w.x) relu(w.y)]`` with ``w`` uniform on S^{d-1} (random features without
    bias, Vempala & Wilmes 2019), as an operator on functions of ``x`` uniform on S^{d-1}.
    ``lambda_k = 0`` for every odd ``k >= 3``; every even degree and degree 1 are positive.
    """
    return funk_hecke(lambda t: relu_kernel(t, d), d, kmax, nodes)


def relu_harmonic_coefficients_closed_form(d: int, kmax: int) -> np.ndarray:
    """The same coefficients from the harmonic expansion of relu itself (an independent check).

    ``relu(s) = s/2 + |s|/2``; with ``c_k = (|S^{d-2}|/|S^{d-1}|) int relu(t) P_k(t) (1-t^2)^{(d-3)/2} dt``
    ``c_k`` is the Funk-Hecke eigenvalue of ``relu`` itself and the kernel is relu's operator composed with
    itself (through ``w``), so ``lambda_k = c_k^2``. ``c_k`` for ``k >= 2`` even comes from Rodrigues' formula.
    """
    if d < 3 or kmax < 0:
        raise ValueError("need d >= 3 and kmax >= 0")
    ratio = sphere_area(d - 2) / sphere_area(d - 1)
    out = np.zeros(kmax + 1)
    for k in range(kmax + 1):
        if k == 0:
            c = ratio / (d - 1)  # int_0^1 t (1-t^2)^{(d-3)/2} dt = 1/(d-1)
        elif k == 1:
            # int_0^1 t^2 (1-t^2)^{(d-3)/2} dt = B(3/2, (d-1)/2) / 2
            c = ratio * special.beta(1.5, (d - 1) / 2) / 2
        elif k % 2 == 1:
            c = 0.0
        else:
            # Rodrigues: P_k(t)(1-t^2)^a = (-1)^k R_k D^k (1-t^2)^{a+k}, a = (d-3)/2,
            # R_k = Gamma((d-1)/2) / (2^k Gamma(k + (d-1)/2)). Integrating t over [0, 1] by parts twice leaves
            # -D^{k-2}(1-t^2)^{a+k} at t = 0 (times (-1)^k R_k, with k even).
            a = (d - 3) / 2
            R = special.gamma((d - 1) / 2) / (2.0**k * special.gamma(k + (d - 1) / 2))
            # D^{k-2} (1 - t^2)^{m} at 0: coefficient of t^{k-2} in the binomial series, times (k-2)!
            m, j = a + k, (k - 2) // 2
            coef = special.binom(m, j) * (-1.0) ** j * special.factorial(k - 2)
            c = ratio * R * coef
        out[k] = c**2
    return out


def _harmonic_dim(d: int, k: int) -> int:
    """Dimension of the spherical harmonics of degree ``k`` on S^{d-1}."""
    if k == 0:
        return 1
    if k == 1:
        return d
    return int(round(special.binom(k + d - 1, k) - special.binom(k + d - 3, k - 2)))


def uniform_sphere(samples: int, d: int, seed=0) -> np.ndarray:
    """``samples`` points uniform on S^{d-1} (normalised Gaussians)."""
    rng = repro.rng(seed)
    g = rng.standard_normal((samples, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


@dataclass
class HarmonicGD:
    """Residual of GD along each target harmonic, measured and predicted by ``(1 - lr lambda_k)^t``."""

    degrees: np.ndarray
    steps: np.ndarray  # the recorded steps t
    residual: np.ndarray  # (len(steps), len(degrees)): coefficient of degree k in f_t - y, relative to y's
    predicted: np.ndarray  # (len(steps), len(degrees))
    lambdas: np.ndarray  # Funk-Hecke coefficients of the degrees
    lr: float
    diverged: bool


def gd_harmonic_residuals(d: int = 5, degrees: Sequence[int] = (1, 2, 3), width: int = 2000, samples: int = 4000,
                          lr: float | None = None, steps: int = 200, record_every: int = 5, seed=0) -> HarmonicGD:
    """GD on the output layer of a width-``width`` unbiased ReLU random-feature net, target = sum of zonal harmonics.

    Features ``relu(w_j . x)`` with ``w_j`` uniform on S^{d-1}, output ``f(x) = (1/width) sum_j a_j relu(w_j . x)``;
    inputs uniform on S^{d-1}; target ``y(x) = sum_k P_k^{(d)}(e_k . x) / ||P_k^{(d)}||`` over ``degrees``, a unit-norm
    zonal harmonic per degree around a random axis ``e_k``. GD on the empirical square loss from ``a = 0`` moves
    the outputs by ``f <- f - lr K (f - y)`` with ``K`` the empirical kernel, so each degree's residual should decay
    as ``(1 - lr lambda_k)^t`` (Vempala & Wilmes 2019). ``lr`` defaults to ``1 / max_k lambda_k`` (stable while the empirical top eigenvalue stays below 2 lambda_0).
    """
    if not isinstance(d, (int, np.integer)) or d < 3:
        raise ValueError(f"d must be an integer >= 3, got {d!r}")
    degrees = np.asarray(degrees, dtype=int)
    if degrees.ndim != 1 or degrees.size == 0 or degrees.min() < 0:
        raise ValueError("degrees must be a non-empty sequence of non-negative integers")
    if width < 1 or samples < 2 or steps < 1 or record_every < 1:
        raise ValueError("width, steps and record_every must be >= 1 and samples >= 2")
    lam_all = relu_kernel_harmonic_coefficients(d, int(degrees.max()))
    lam = lam_all[degrees]
    if lr is None:
        lr = 1.0 / lam_all.max()
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive step size, got {lr}")
    rng = repro.rng(seed)
    X = uniform_sphere(samples, d, rng)
    Wf = uniform_sphere(width, d, rng)
    axes = uniform_sphere(degrees.size, d, rng)
    # unit L2 norm (uniform measure) of the zonal harmonic P_k(e.x): ||P_k||^2 = 1 / N(d, k)
    H = np.stack([legendre_sphere(int(k), d, X @ e) * np.sqrt(_harmonic_dim(d, int(k)))
                  for k, e in zip(degrees, axes)], axis=1)
    y = H.sum(axis=1)
    Phi = np.maximum(X @ Wf.T, 0.0)  # samples x width
    # the outputs' update: f <- f - lr * (Phi Phi^T / (width * samples)) (f - y); track r = f - y directly
    r = -y.copy()
    # project on the harmonics by least squares on the sample (they are nearly orthonormal there)
    G = np.linalg.pinv(H)
    rec = list(range(0, steps + 1, record_every))
    if rec[-1] != steps:
        rec.append(steps)
    res = np.empty((len(rec), degrees.size))
    scale = 1.0 / (width * samples)
    diverged = False
    j = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps + 1):
            if t == rec[j]:
                res[j] = -(G @ r)  # coefficient of each harmonic in y - f, initially 1
                j += 1
            if t == steps:
                break
            r = r - lr * scale * (Phi @ (Phi.T @ r))
            if not np.all(np.isfinite(r)):
                diverged = True
                res[j:] = np.nan
                break
    steps_arr = np.array(rec)
    with np.errstate(over="ignore"):  # a step size past 2 / lambda_k predicts divergence, not an error
        pred = (1 - lr * lam)[None, :] ** steps_arr[:, None]
    return HarmonicGD(degrees=degrees, steps=steps_arr, residual=res, predicted=pred, lambdas=lam, lr=float(lr),
                      diverged=diverged)


# ---------------------------------------------------------------- approximately convex functions


def rippled_quadratic(d: int = 10, eps: float = 1.0, omega: float = 30.0):
    """``F(x) = |x|^2 / 2 + eps * mean_i (1 - cos(omega x_i)) / 2`` and its gradient.

    ``0 <= F - |x|^2/2 <= eps``: F is eps-close to a convex function (approximately convex); its minimum is
    ``F(0) = 0``; when ``eps omega^2 / (2 d) > 1`` it has many spurious local minima.
    """
    if d < 1 or eps < 0 or omega < 0:
        raise ValueError("need d >= 1, eps >= 0 and omega >= 0")
    c = eps / (2 * d)

    def f(x):
        x = np.asarray(x, dtype=float)
        return 0.5 * float(x @ x) + c * float(np.sum(1 - np.cos(omega * x)))

    def grad(x):
        x = np.asarray(x, dtype=float)
        return x + c * omega * np.sin(omega * x)

    return f, grad


@dataclass
class OptResult:
    x: np.ndarray  # final iterate
    best_x: np.ndarray
    values: np.ndarray  # f along the run
    best_value: float
    accept_rate: float = float("nan")
    diverged: bool = False


def gradient_descent(grad: Callable, x0, lr: float, steps: int, f: Callable | None = None) -> OptResult:
    """Plain gradient descent ``x <- x - lr grad(x)``; a non-finite iterate stops it (``diverged``)."""
    x = np.array(x0, dtype=float)
    if x.ndim != 1:
        raise ValueError("x0 must be a 1-d array")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive step size, got {lr}")
    if steps < 0:
        raise ValueError("steps must be >= 0")
    vals = []
    diverged = False
    for _ in range(steps):
        with np.errstate(over="ignore", invalid="ignore"):
            x = x - lr * grad(x)
        if not np.all(np.isfinite(x)):
            diverged = True
            break
        if f is not None:
            vals.append(f(x))
    values = np.array(vals) if vals else np.array([f(x)] if f is not None and not diverged else [])
    best = float(values.min()) if values.size else float("nan")
    return OptResult(x=x, best_x=x, values=values, best_value=best, diverged=diverged)


def geometric_schedule(t0: float, t1: float, steps: int) -> np.ndarray:
    """Temperatures falling geometrically from ``t0`` to ``t1`` over ``steps`` steps."""
    if not (t0 > 0 and t1 > 0):
        raise ValueError("temperatures must be positive")
    if steps < 1:
        raise ValueError("steps must be >= 1")
    return t0 * (t1 / t0) ** (np.arange(steps) / max(steps - 1, 1))


def simulated_annealing(f: Callable, x0, schedule, steps: int, seed=0, step_size: float = 0.1,
                        adapt: bool = True) -> OptResult:
    """Metropolis random walk on ``exp(-f / T_t)`` with temperatures ``T_t`` from ``schedule``.

    ``schedule`` is an array of ``steps`` positive temperatures, or a callable ``t -> T``. Gaussian proposals of
    scale ``step_size * sqrt(T_t / T_0)`` when ``adapt`` (smaller moves as the distribution concentrates, as
    in Kalai & Vempala's annealing), else ``step_size``. Uses function values only (zeroth order).
    """
    x = np.array(x0, dtype=float)
    if x.ndim != 1:
        raise ValueError("x0 must be a 1-d array")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not (np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be positive, got {step_size}")
    temps = np.array([schedule(t) for t in range(steps)] if callable(schedule) else schedule, dtype=float)
    if temps.shape != (steps,):
        raise ValueError(f"schedule must give {steps} temperatures, got shape {temps.shape}")
    if not np.all(np.isfinite(temps)) or temps.min() <= 0:
        raise ValueError("temperatures must be positive and finite")
    rng = repro.rng(seed)
    d = x.size
    fx = float(f(x))
    best_x, best = x.copy(), fx
    vals = np.empty(steps)
    noise = rng.standard_normal((steps, d))
    u = np.log(rng.random(steps))
    scales = step_size * (np.sqrt(temps / temps[0]) if adapt else np.ones(steps))
    accepted = 0
    for t in range(steps):
        y = x + scales[t] * noise[t]
        fy = float(f(y))
        if fy <= fx or u[t] < -(fy - fx) / temps[t]:
            x, fx = y, fy
            accepted += 1
            if fx < best:
                best, best_x = fx, x.copy()
        vals[t] = fx
    return OptResult(x=x, best_x=best_x, values=vals, best_value=best, accept_rate=accepted / steps,
                     diverged=not np.isfinite(fx))
