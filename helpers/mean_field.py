"""Mean-field dynamics of two-layer networks (chapter 3, Montanari's talk).

The chapter follows the isotropic-Gaussians example of Mei, Montanari & Nguyen (2018, PNAS,
"A mean field view of the landscape of two-layer neural networks"):

- data: a label ``y = +1`` or ``-1`` with probability 1/2 each, and ``x ~ N(0, s_y^2 I_d)``
  with ``s_{+1} = 1 + Delta`` and ``s_{-1} = 1 - Delta``: the classes differ only in scale;
- network: ``y_hat(x) = (1/N) sum_i sigma(<w_i, x>)`` with the paper's piecewise-linear
  ``sigma`` (value ``s1`` below the knot ``t1``, ``s2`` above ``t2``, linear in between);
- training: one-pass SGD on the square loss, each neuron moving by ``2 lr (y - y_hat)
  sigma'(<w_i, x>) x`` (the gradient of ``(y - y_hat)^2`` times ``N lr``), so that the time
  ``t = steps x lr`` is the time of the limiting dynamics.

Public functions:

- :func:`q`, :func:`q_prime`, :func:`sigma_second_moment`: ``E sigma(a G)``, its derivative
  in ``a`` and ``E sigma(a G)^2`` for ``G ~ N(0, 1)``, in closed form.
- :func:`sgd_two_layer`: the SGD above, recording the risk on a fixed evaluation set and the
  neurons at checkpoints (vectorised over several seeds at once).
- :func:`radial_pde`: the ``d -> infinity`` limit of the distributional dynamics, an ODE for
  the radii ``r_i = ||w_i||`` (derived in the chapter), integrated by RK4.
- :func:`risk_fluctuation`: the spread of the SGD risk at a fixed time across seeds.
- :func:`weight_movement`: how far the first-layer weights move in the mean-field scaling
  (output ``1/N``) versus the kernel scaling (output ``1/sqrt N``).

Plot functions (``plot_*``) take these results and return matplotlib Figures; the widget
factory :func:`particles_widget` is registered as ``"ch03-particles"``.

Inputs are validated (``ValueError`` says what is wrong); a run whose risk becomes
non-finite is reported by ``diverged=True`` and stops, it never raises.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

from helpers import repro, widgets

#: The isotropic-Gaussians example of Mei, Montanari & Nguyen (2018), Figure 2.
PAPER = {"delta": 0.8, "knots": (0.5, 1.5), "levels": (-2.5, 7.5), "init_scale": 0.8, "d": 40}

_SQRT2PI = np.sqrt(2.0 * np.pi)


# --------------------------------------------------------------------------- activation
def _check_activation(knots, levels):
    try:
        t1, t2 = (float(v) for v in knots)
        s1, s2 = (float(v) for v in levels)
    except (TypeError, ValueError):
        raise ValueError(f"knots and levels must be pairs of numbers, got {knots!r} and {levels!r}") from None
    if not all(np.isfinite([t1, t2, s1, s2])):
        raise ValueError("knots and levels must be finite")
    if not t1 < t2:
        raise ValueError(f"the knots must satisfy t1 < t2, got t1={t1}, t2={t2}")
    return t1, t2, s1, s2


def sigma(z, knots=PAPER["knots"], levels=PAPER["levels"]):
    """The piecewise-linear activation of Mei et al. (2018): ``s1`` for ``z <= t1``, ``s2`` for
    ``z >= t2``, linear in between (so ``s1 + k ((z - t1)_+ - (z - t2)_+)``, ``k = (s2-s1)/(t2-t1)``)."""
    t1, t2, s1, s2 = _check_activation(knots, levels)
    z = np.asarray(z, dtype=float)
    return s1 + (s2 - s1) / (t2 - t1) * np.clip(z - t1, 0.0, t2 - t1)


def sigma_prime(z, knots=PAPER["knots"], levels=PAPER["levels"]):
    """The derivative of :func:`sigma`: the slope ``k`` strictly between the knots, else 0."""
    t1, t2, s1, s2 = _check_activation(knots, levels)
    z = np.asarray(z, dtype=float)
    return np.where((z > t1) & (z < t2), (s2 - s1) / (t2 - t1), 0.0)


def _phi(u):
    return np.exp(-0.5 * u * u) / _SQRT2PI


#: Scales below this are treated as this (the a -> 0 limits then come out of the same formulas).
_TINY = 1e-300
_BIG = 1e150


def _scaled(c, a):
    """``c / a`` for ``a > 0``, clipped to +-1e150 so that ``a = 0`` gives the right limits."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return np.clip(c / a, -_BIG, _BIG)


def _check_scale(a):
    a = np.asarray(a, dtype=float)
    if not np.all(np.isfinite(a)):
        raise ValueError("the scale a must be finite")
    return np.maximum(np.abs(a), _TINY)  # sigma(aG) and sigma(-aG) have the same law: q is even in a


def _q_qprime(a, t1, t2, s1, s2):
    """``q(a)`` and ``q'(a)`` for ``a > 0`` (no validation: the fast path of the ODE)."""
    k = (s2 - s1) / (t2 - t1)
    u1, u2 = _scaled(t1, a), _scaled(t2, a)
    with np.errstate(over="ignore", under="ignore"):
        p1, p2 = _phi(u1), _phi(u2)
    # E(aG - c)_+ = a phi(c/a) - c Phi(-c/a)
    hinge = a * (p1 - p2) - t1 * ndtr(-u1) + t2 * ndtr(-u2)
    return s1 + k * hinge, k * (p1 - p2)


def q(a, knots=PAPER["knots"], levels=PAPER["levels"]):
    """``q(a) = E sigma(a G)``, ``G ~ N(0, 1)``, in closed form (even in ``a``).

    With ``sigma = s1 + k[(z - t1)_+ - (z - t2)_+]`` and ``E(aG - c)_+ = a phi(c/a) - c Phi(-c/a)``
    (``Phi`` the standard normal distribution function, ``phi`` its density).
    """
    t1, t2, s1, s2 = _check_activation(knots, levels)
    return _q_qprime(_check_scale(a), t1, t2, s1, s2)[0]


def q_prime(a, knots=PAPER["knots"], levels=PAPER["levels"]):
    """``q'(a) = d/da E sigma(a G) = k [phi(t1/a) - phi(t2/a)]`` for ``a > 0`` (odd in ``a``).

    Uses ``d/da E(aG - c)_+ = E[G 1{aG > c}] = phi(c/a)``. At ``a = 0`` the limit from the
    right is returned (``k/sqrt(2 pi)`` from a knot at exactly 0, else 0).
    """
    t1, t2, s1, s2 = _check_activation(knots, levels)
    a_raw = np.asarray(a, dtype=float)
    sign = np.where(a_raw < 0, -1.0, 1.0)
    return sign * _q_qprime(_check_scale(a_raw), t1, t2, s1, s2)[1]


def sigma_second_moment(a, knots=PAPER["knots"], levels=PAPER["levels"]):
    """``E sigma(a G)^2`` in closed form (truncated Gaussian moments on the three pieces).

    Used for the finite-``N`` correction of the risk: the diagonal terms ``i = j`` of
    ``(1/N^2) sum_ij E sigma_i sigma_j``.
    """
    t1, t2, s1, s2 = _check_activation(knots, levels)
    a = _check_scale(a)
    k = (s2 - s1) / (t2 - t1)
    u1, u2 = _scaled(t1, a), _scaled(t2, a)
    with np.errstate(over="ignore", under="ignore"):
        p1, p2 = _phi(u1), _phi(u2)
    # E[G^j 1{u1 < G < u2}] for j = 0, 1, 2
    m0 = ndtr(u2) - ndtr(u1)
    m1 = p1 - p2
    m2 = m0 + u1 * p1 - u2 * p2
    b = s1 - k * t1  # on the middle piece sigma = b + k a G
    middle = b * b * m0 + 2.0 * b * k * a * m1 + (k * a) ** 2 * m2
    return s1 * s1 * ndtr(u1) + s2 * s2 * ndtr(-u2) + middle


# --------------------------------------------------------------------------- data
def _check_delta(delta):
    delta = float(delta)
    if not (0.0 <= delta < 1.0):
        raise ValueError(f"Delta must lie in [0, 1) so that both class scales 1 +- Delta are positive, got {delta}")
    return delta


def sample_data(n, d, delta=PAPER["delta"], seed=0, balanced=False):
    """``n`` samples of the isotropic-Gaussians task: ``y = +-1``, ``x ~ N(0, (1 + y Delta)^2 I_d)``.

    ``balanced=True`` gives exactly ``n // 2`` of each class (first the ``+1`` class), which
    lowers the variance of a risk estimated on the sample.
    """
    n, d = int(n), int(d)
    if n < 1 or d < 1:
        raise ValueError(f"n and d must be >= 1, got n={n}, d={d}")
    delta = _check_delta(delta)
    rng = repro.rng(seed)
    if balanced:
        if n % 2:
            raise ValueError(f"balanced=True needs an even n, got {n}")
        y = np.repeat([1.0, -1.0], n // 2)
    else:
        y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    x = rng.standard_normal((n, d)) * (1.0 + delta * y)[:, None]
    return x, y


# --------------------------------------------------------------------------- SGD
@dataclass
class SGDResult:
    """A run of :func:`sgd_two_layer` (or several seeds at once).

    ``times``: the checkpoint times ``t = step x lr``; ``risk``: the square-loss risk
    ``mean (y - y_hat)^2`` on the evaluation set at each checkpoint (shape ``(C,)``, or
    ``(S, C)`` for ``S`` seeds); ``weights``: the neurons at the checkpoints (``(C, N, d)`` or
    ``(S, C, N, d)``; ``None`` if not stored); ``diverged``: the risk became non-finite (the
    run stopped there; later checkpoints hold ``nan``).
    """

    times: np.ndarray
    risk: np.ndarray
    weights: np.ndarray | None
    N: int
    d: int
    lr: float
    batch: int
    scaling: str = "mean_field"
    diverged: bool | np.ndarray = False
    initial: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def radii(self):
        """``||w_i||`` at each checkpoint (shape ``(C, N)`` or ``(S, C, N)``)."""
        if self.weights is None:
            raise ValueError("the neurons were not stored; run with store_weights=True")
        return np.linalg.norm(self.weights, axis=-1)

    def at(self, t):
        """Index of the checkpoint nearest to time ``t``."""
        return int(np.argmin(np.abs(self.times - t)))


def _checkpoint_steps(times, steps, lr):
    if times is None:
        idx = np.unique(np.linspace(0, steps, min(steps, 20) + 1).round().astype(int))
    else:
        times = np.atleast_1d(np.asarray(times, dtype=float))
        if np.any(~np.isfinite(times)) or np.any(times < 0) or np.any(times > steps * lr * (1 + 1e-9)):
            raise ValueError(f"checkpoint times must lie in [0, steps x lr] = [0, {steps * lr:g}], got {times}")
        idx = np.unique(np.round(times / lr).astype(int))
    return idx


def _init_weights(N, d, init_scale, seeds, paired):
    W = np.empty((len(seeds), N, d))
    for j, s in enumerate(seeds):
        rng = np.random.default_rng([int(s), 0])
        if paired:
            half = rng.standard_normal((N // 2, d)) * (init_scale / np.sqrt(d))
            W[j] = np.concatenate([half, half])
        else:
            W[j] = rng.standard_normal((N, d)) * (init_scale / np.sqrt(d))
    return W


def sgd_two_layer(N, d, steps, lr, seed=0, *, batch=50, delta=PAPER["delta"], knots=PAPER["knots"],
                  levels=PAPER["levels"], init_scale=PAPER["init_scale"], times=None, n_eval=4000,
                  eval_seed=12345, store_weights=True, scaling="mean_field", W0=None, chunk=64):
    """One-pass (online) SGD on the two-layer network of Mei, Montanari & Nguyen (2018).

    ``y_hat(x) = (1/N) sum_i sigma(<w_i, x>)``; each step draws ``batch`` fresh samples and moves
    every neuron by ``2 lr mean_batch[(y - y_hat) sigma'(<w_i, x>) x]`` (the mean-field step:
    gradient of the square loss times ``N lr``), so ``t = steps x lr`` is the time of the
    limiting PDE. The initial neurons are i.i.d. ``N(0, init_scale^2 / d I_d)`` (paper: 0.8).

    ``seed`` may be an integer or a sequence of integers: a sequence runs the seeds at once
    (vectorised) and each seed gives the same numbers as a run on its own. The seed fixes the
    initial neurons and the stream of samples; the evaluation set (``n_eval`` balanced
    samples from ``eval_seed``) is the same for every seed, so seeds differ only by the run.

    ``times``: checkpoint times in ``[0, steps x lr]`` (rounded to whole steps; default 21
    evenly spaced). ``scaling="kernel"`` switches to ``y_hat = (1/sqrt N) sum_i a_i sigma(...)``
    with a step ``lr`` on the plain gradient (the lazy/NTK parametrisation), and
    ``scaling="paired_mean_field"`` to ``(1/N) sum_i a_i sigma(...)``; both use ``a_i = +1`` for
    the first half of the neurons and ``-1`` for a copy of them, so the network starts at
    exactly ``y_hat = 0`` (the symmetric initialisation of Chizat & Bach). ``W0`` (shape
    ``(N, d)``) overrides the random initial neurons.
    """
    N, d, steps, batch = int(N), int(d), int(steps), int(batch)
    if N < 1 or d < 1:
        raise ValueError(f"N (neurons) and d (dimension) must be >= 1, got N={N}, d={d}")
    if steps < 0 or batch < 1:
        raise ValueError(f"steps must be >= 0 and batch >= 1, got steps={steps}, batch={batch}")
    lr = float(lr)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"the step size lr must be a positive number, got {lr}")
    if init_scale < 0 or not np.isfinite(init_scale):
        raise ValueError(f"init_scale must be >= 0, got {init_scale}")
    if n_eval < 2 or n_eval % 2:
        raise ValueError(f"n_eval must be an even number >= 2 (the evaluation set is balanced), got {n_eval}")
    if scaling not in ("mean_field", "kernel", "paired_mean_field"):
        raise ValueError(f"scaling must be 'mean_field', 'paired_mean_field' or 'kernel', got {scaling!r}")
    paired = scaling != "mean_field"
    if paired and N % 2:
        raise ValueError(f"scaling={scaling!r} pairs the neurons; N must be even, got {N}")
    delta = _check_delta(delta)
    t1, t2, s1, s2 = _check_activation(knots, levels)
    kslope = (s2 - s1) / (t2 - t1)
    single = np.ndim(seed) == 0
    seeds = [seed] if single else list(seed)
    if not seeds or any(isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s < 0
                        for s in seeds):
        raise ValueError(f"seed must be a non-negative integer or a non-empty list of them, got {seed!r}")
    S = len(seeds)
    record = _checkpoint_steps(times, steps, lr)

    if W0 is not None:
        W0 = np.asarray(W0, dtype=float)
        if W0.shape != (N, d) or not np.all(np.isfinite(W0)):
            raise ValueError(f"W0 must be a finite array of shape (N, d) = ({N}, {d}), got {W0.shape}")
        W = np.broadcast_to(W0, (S, N, d)).copy()
    else:
        W = _init_weights(N, d, float(init_scale), seeds, paired)
    initial = W.copy()
    if paired:
        a = np.concatenate([np.ones(N // 2), -np.ones(N // 2)])
        alpha = 1.0 / N if scaling == "paired_mean_field" else 1.0 / np.sqrt(N)
    else:
        a = np.ones(N)
        alpha = 1.0 / N
    a_out = a * alpha  # output weights; the step of neuron i is 2 lr (y - y_hat) a_i sigma' x / (alpha N)

    Xe, ye = sample_data(n_eval, d, delta, seed=eval_seed, balanced=True)
    data_rngs = [np.random.default_rng([int(s), 1]) for s in seeds]

    width = t2 - t1
    Wt = np.ascontiguousarray(W.transpose(0, 2, 1))    # (S, d, N): both products below are plain GEMMs
    const = s1 * a_out.sum()

    def risk_of(Wb):
        out = np.empty(S)
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged run is flagged, not warned about
            for j in range(S):
                yhat = const + kslope * (np.clip(Xe @ Wb[j] - t1, 0.0, width) @ a_out)
                out[j] = np.mean((ye - yhat) ** 2)
        return out

    C = len(record)
    risks = np.full((S, C), np.nan)
    snaps = np.full((S, C, N, d), np.nan) if store_weights else None
    diverged = np.zeros(S, dtype=bool)
    ci = 0
    Xbuf = ybuf = None
    step_out = (2.0 * lr * kslope / batch) / (alpha * N)
    signed = a * step_out  # per-neuron factor of the update
    uniform = bool(np.all(a == a[0]))
    # non-finite values are detected at the checkpoints and reported in `diverged`, not warned about
    with np.errstate(over="ignore", invalid="ignore"):
        for step in range(steps + 1):
            if ci < C and record[ci] == step:
                r = risk_of(Wt)
                diverged |= ~np.isfinite(r) | ~np.all(np.isfinite(Wt), axis=(1, 2))
                risks[:, ci] = np.where(diverged, np.nan, r)
                if store_weights:
                    snaps[:, ci] = Wt.transpose(0, 2, 1)
                    snaps[diverged, ci] = np.nan
                ci += 1
                if diverged.all():
                    break
            if step == steps:
                break
            off = step % chunk
            if off == 0:  # draw the samples of the next `chunk` steps per seed (same stream for any S)
                ys, xs = [], []
                for rg in data_rngs:
                    yy = np.where(rg.random((chunk, batch)) < 0.5, 1.0, -1.0)
                    xs.append(rg.standard_normal((chunk, batch, d)) * (1.0 + delta * yy)[..., None])
                    ys.append(yy)
                Xbuf, ybuf = np.stack(xs, 1), np.stack(ys, 1)  # (chunk, S, batch, d), (chunk, S, batch)
            X, y = Xbuf[off], ybuf[off]
            A = X @ Wt                                         # (S, batch, N) pre-activations
            A -= t1
            np.clip(A, 0.0, width, out=A)                      # sigma = s1 + kslope * A
            yhat = const + kslope * (A @ a_out)                # (S, batch)
            G = (A > 0.0) & (A < width)                        # sigma' / kslope
            G = G * (y - yhat)[..., None]
            if uniform:
                Wt += signed[0] * (X.transpose(0, 2, 1) @ G)
            else:
                Wt += (X.transpose(0, 2, 1) @ G) * signed
    W = Wt.transpose(0, 2, 1)
    if not np.all(np.isfinite(W)):
        diverged |= ~np.all(np.isfinite(W), axis=(1, 2))
    times_out = record * lr
    if single:
        return SGDResult(times_out, risks[0], None if snaps is None else snaps[0], N, d, lr, batch, scaling,
                         bool(diverged[0]), initial[0], {"seed": seed, "delta": delta, "n_eval": n_eval})
    return SGDResult(times_out, risks, snaps, N, d, lr, batch, scaling, diverged, initial,
                     {"seeds": seeds, "delta": delta, "n_eval": n_eval})


# --------------------------------------------------------------------------- radial ODE
@dataclass
class RadialResult:
    """A solution of :func:`radial_pde`.

    ``times``; ``radii`` (``(C, N)``: every particle at each checkpoint); ``m_plus``,
    ``m_minus``: the class means of the network output, ``mean_j q(s_+- r_j)``; ``risk``:
    ``1/2[(1 - m_+)^2 + (1 + m_-)^2]`` (the ``N = infinity`` risk of this distribution);
    ``risk_finite_N``: ``risk`` plus the ``1/N`` variance term of ``N`` neurons in general
    position; ``diverged``: the radii became non-finite.
    """

    times: np.ndarray
    radii: np.ndarray
    m_plus: np.ndarray
    m_minus: np.ndarray
    risk: np.ndarray
    risk_finite_N: np.ndarray
    delta: float
    diverged: bool = False

    def at(self, t):
        return int(np.argmin(np.abs(self.times - t)))


def _velocity(r, sp, sm, act):
    # the fast path of the ODE (inputs already validated): q and q' at s_+ r and s_- r at once
    t1, t2, s1, s2 = act
    k = (s2 - s1) / (t2 - t1)
    n = r.size
    a = np.empty(2 * n)
    np.multiply(sp, r, out=a[:n])
    np.multiply(sm, r, out=a[n:])
    np.maximum(a, 1e-12, out=a)  # radii are lengths; at r -> 0 the limits below are reached anyway
    u1 = np.clip(t1 / a, -_BIG, _BIG)
    u2 = np.clip(t2 / a, -_BIG, _BIG)
    p1 = np.exp(-0.5 * u1 * u1) / _SQRT2PI
    p2 = np.exp(-0.5 * u2 * u2) / _SQRT2PI
    qv = s1 + k * (a * (p1 - p2) - t1 * ndtr(-u1) + t2 * ndtr(-u2))
    dq = k * (p1 - p2)
    mp, mm = qv[:n].mean(), qv[n:].mean()
    return sp * dq[:n] * (1.0 - mp) - sm * dq[n:] * (1.0 + mm)


def radial_velocity(r, delta=PAPER["delta"], knots=PAPER["knots"], levels=PAPER["levels"]):
    """``dr_i/dt = s_+ q'(s_+ r_i)(1 - m_+) - s_- q'(s_- r_i)(1 + m_-)`` for the particles ``r``.

    ``s_+- = 1 +- Delta``; ``m_+- = mean_j q(s_+- r_j)`` couples the particles (it is the
    interaction term of the PDE).
    """
    r = np.asarray(r, dtype=float).ravel()
    if r.size < 1 or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError("r must be a non-empty array of finite, non-negative radii")
    delta = _check_delta(delta)
    act = _check_activation(knots, levels)
    return _velocity(r, 1.0 + delta, 1.0 - delta, act)


def radial_potential(r, particles, delta=PAPER["delta"], knots=PAPER["knots"], levels=PAPER["levels"]):
    """``Psi(r; rho)`` of the ``d -> infinity`` example, for ``rho`` the law of ``particles``.

    ``Psi(r) = -1/2 q(s_+ r)(1 - m_+) + 1/2 q(s_- r)(1 + m_-)`` (``V`` plus the interaction with
    ``rho``, up to a constant); the ODE is ``dr/dt = -2 dPsi/dr``. Global minimisers of the risk
    put all their mass on the minimisers of ``Psi``; fixed points only on its critical points.
    """
    r = np.asarray(r, dtype=float)
    p = np.asarray(particles, dtype=float).ravel()
    if p.size < 1 or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("particles must be a non-empty array of finite, non-negative radii")
    if not np.all(np.isfinite(r)):
        raise ValueError("r must be finite")
    delta = _check_delta(delta)
    sp, sm = 1.0 + delta, 1.0 - delta
    mp, mm = np.mean(q(sp * p, knots, levels)), np.mean(q(sm * p, knots, levels))
    return -0.5 * q(sp * r, knots, levels) * (1.0 - mp) + 0.5 * q(sm * r, knots, levels) * (1.0 + mm)


def _radial_risk(r, delta, knots, levels):
    sp, sm = 1.0 + delta, 1.0 - delta
    qp, qm = q(sp * r, knots, levels), q(sm * r, knots, levels)
    mp, mm = qp.mean(-1), qm.mean(-1)
    risk = 0.5 * ((1.0 - mp) ** 2 + (1.0 + mm) ** 2)
    var = 0.5 * ((sigma_second_moment(sp * r, knots, levels) - qp ** 2).mean(-1)
                 + (sigma_second_moment(sm * r, knots, levels) - qm ** 2).mean(-1))
    return mp, mm, risk, risk + var / r.shape[-1]


def radial_pde(r0, t, *, dt=0.02, times=None, delta=PAPER["delta"], knots=PAPER["knots"],
               levels=PAPER["levels"], method="rk4", rtol=1e-6):
    """The ``d -> infinity`` distributional dynamics of the isotropic-Gaussians example.

    For rotation-invariant data the PDE of Mei, Montanari & Nguyen (2018) keeps a
    rotation-invariant ``rho_t``; as ``d -> infinity`` the neurons become orthogonal and each
    radius obeys the ODE of :func:`radial_velocity`, the particles ``r0`` (any sample of the
    initial radii) interacting only through ``m_+-``. Integrated by classical RK4 with step
    ``dt``; ``times`` (default 21 points in ``[0, t]``) are rounded to multiples of ``dt``.
    Radii are lengths: the ODE keeps ``r = 0`` fixed, and ``|r|`` is used (``q`` is even).
    """
    r = np.asarray(r0, dtype=float).ravel().copy()
    if r.size < 1 or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError("r0 must be a non-empty array of finite, non-negative radii")
    t, dt = float(t), float(dt)
    if not (np.isfinite(t) and t >= 0):
        raise ValueError(f"t must be a finite time >= 0, got {t}")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive step, got {dt}")
    delta = _check_delta(delta)
    steps = int(np.ceil(t / dt - 1e-9))
    dt = t / steps if steps else dt
    if times is None:
        rec = np.unique(np.linspace(0, steps, min(steps, 20) + 1).round().astype(int))
    else:
        times = np.atleast_1d(np.asarray(times, dtype=float))
        if np.any(~np.isfinite(times)) or np.any(times < 0) or np.any(times > t * (1 + 1e-9)):
            raise ValueError(f"times must lie in [0, t] = [0, {t:g}], got {times}")
        rec = np.unique(np.round(times / dt).astype(int)) if steps else np.zeros(1, int)
    act = _check_activation(knots, levels)
    f = functools.partial(_velocity, sp=1.0 + delta, sm=1.0 - delta, act=act)
    if method not in ("rk4", "adaptive"):
        raise ValueError(f"method must be 'rk4' or 'adaptive', got {method!r}")
    if method == "adaptive":
        from scipy.integrate import solve_ivp

        if not (0 < rtol < 1):
            raise ValueError(f"rtol must lie in (0, 1), got {rtol}")
        t_eval = np.linspace(0, t, 21) if times is None else np.unique(np.clip(times, 0, t))
        if t == 0:
            snaps = np.tile(r, (len(t_eval), 1))
            diverged = False
        else:
            sol = solve_ivp(lambda _t, y: f(np.abs(y)), (0.0, t), r, method="DOP853", t_eval=t_eval,
                            rtol=rtol, atol=1e-10)
            diverged = not sol.success or not np.all(np.isfinite(sol.y))
            snaps = np.full((len(t_eval), r.size), np.nan)
            snaps[: sol.y.shape[1]] = np.abs(sol.y.T)
        mp, mm, risk, risk_n = _radial_risk(snaps, delta, knots, levels)
        return RadialResult(t_eval, snaps, mp, mm, risk, risk_n, delta, diverged)
    snaps = np.full((len(rec), r.size), np.nan)
    ci, diverged = 0, False
    for step in range(steps + 1):
        if ci < len(rec) and rec[ci] == step:
            snaps[ci] = r
            ci += 1
        if step == steps:
            break
        k1 = f(r)
        k2 = f(r + 0.5 * dt * k1)
        k3 = f(r + 0.5 * dt * k2)
        k4 = f(r + dt * k3)
        r = np.abs(r + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4))
        if not np.all(np.isfinite(r)):
            diverged = True
            break
    mp, mm, risk, risk_n = _radial_risk(snaps, delta, knots, levels)
    return RadialResult(rec * dt, snaps, mp, mm, risk, risk_n, delta, diverged)


# --------------------------------------------------------------------------- fluctuations
@dataclass
class FluctuationResult:
    """Risk at time ``t`` of independent SGD runs: ``risk[i, j]`` for ``Ns[i]`` and seed ``j``.

    ``std``: the spread over seeds for each ``N``; ``scaled``: ``std x sqrt(N)``; ``slope``:
    least-squares slope of ``log std`` against ``log N`` (``-1/2`` for a law of large numbers
    with Gaussian fluctuations).
    """

    Ns: np.ndarray
    seeds: list
    t: float
    risk: np.ndarray
    std: np.ndarray
    scaled: np.ndarray
    slope: float
    mean: np.ndarray


def risk_fluctuation(Ns, seeds, t, *, lr=5e-3, batch=50, d=PAPER["d"], n_eval=1000, **kw):
    """Spread across seeds of the SGD risk at time ``t`` for each width in ``Ns``.

    ``seeds``: an int (that many seeds ``0..seeds-1``) or a list of seeds (at least 2). The
    evaluation set is shared, so the spread is that of the trained networks. Extra keywords go
    to :func:`sgd_two_layer`.
    """
    Ns = np.atleast_1d(np.asarray(Ns))
    if Ns.ndim != 1 or Ns.size < 1 or np.any(Ns < 1) or np.any(Ns != np.round(Ns)):
        raise ValueError(f"Ns must be a non-empty list of positive integers, got {Ns}")
    Ns = Ns.astype(int)
    seeds = list(range(int(seeds))) if np.ndim(seeds) == 0 else list(seeds)
    if len(seeds) < 2:
        raise ValueError("a spread needs at least 2 seeds")
    t, lr = float(t), float(lr)
    if not (np.isfinite(t) and t >= 0):
        raise ValueError(f"t must be a finite time >= 0, got {t}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be positive, got {lr}")
    steps = int(round(t / lr))
    risk = np.empty((Ns.size, len(seeds)))
    for i, N in enumerate(Ns):
        res = sgd_two_layer(N, d, steps, lr, seeds, batch=batch, times=[steps * lr], n_eval=n_eval,
                            store_weights=False, **kw)
        risk[i] = res.risk[:, -1]
    std = risk.std(axis=1, ddof=1)
    slope = float(np.polyfit(np.log(Ns), np.log(std), 1)[0]) if Ns.size > 1 else float("nan")
    return FluctuationResult(Ns, seeds, steps * lr, risk, std, std * np.sqrt(Ns), slope, risk.mean(axis=1))


# --------------------------------------------------------------------------- regimes
@dataclass
class MovementResult:
    """Relative movement ``||W_t - W_0||_F / ||W_0||_F`` and risk at time ``t``, per width and scaling."""

    Ns: np.ndarray
    scalings: tuple
    t: float
    movement: np.ndarray   # (len(scalings), len(Ns))
    risk: np.ndarray       # (len(scalings), len(Ns))
    risk0: np.ndarray

    def rows(self):
        return [{"N": int(N), "scaling": s, "relative movement": float(self.movement[i, j]),
                 "risk at t": float(self.risk[i, j])}
                for i, s in enumerate(self.scalings) for j, N in enumerate(self.Ns)]


def weight_movement(Ns, t, *, lr=5e-3, seed=0, d=PAPER["d"], scalings=("paired_mean_field", "kernel"),
                    n_eval=1000, **kw):
    """How far the first layer moves by time ``t`` in the mean-field and the kernel scaling.

    Both networks start from the same symmetric initialisation (``y_hat = 0``) and follow the
    SGD of :func:`sgd_two_layer` with step sizes chosen so that the network *function* moves
    at a rate independent of ``N``; the kernel (lazy) scaling reaches it by moving each neuron
    by ``O(1/sqrt N)`` (Jacot et al. 2018; Chizat & Bach 2019), the mean-field one by ``O(1)``.
    """
    Ns = np.atleast_1d(np.asarray(Ns))
    if Ns.ndim != 1 or Ns.size < 1 or np.any(Ns < 2) or np.any(Ns % 2):
        raise ValueError(f"Ns must be even integers >= 2 (the neurons come in +- pairs), got {Ns}")
    t, lr = float(t), float(lr)
    if not (np.isfinite(t) and t > 0 and np.isfinite(lr) and lr > 0):
        raise ValueError(f"t and lr must be positive, got t={t}, lr={lr}")
    steps = int(round(t / lr))
    mov = np.empty((len(scalings), Ns.size))
    risk = np.empty_like(mov)
    risk0 = np.empty_like(mov)
    for i, sc in enumerate(scalings):
        for j, N in enumerate(Ns):
            res = sgd_two_layer(int(N), d, steps, lr, seed, scaling=sc, times=[0.0, steps * lr], n_eval=n_eval,
                                **kw)
            W0, Wt = res.weights[0], res.weights[-1]
            mov[i, j] = np.linalg.norm(Wt - W0) / np.linalg.norm(W0)
            risk[i, j], risk0[i, j] = res.risk[-1], res.risk[0]
    return MovementResult(Ns.astype(int), tuple(scalings), steps * lr, mov, risk, risk0)


def quantile_radii(n, d=PAPER["d"], init_scale=PAPER["init_scale"]):
    """``n`` deterministic radii with the law of ``||w||``, ``w ~ N(0, init_scale^2/d I_d)``.

    The ``(i + 1/2)/n`` quantiles of ``init_scale sqrt(chi^2_d / d)``: a particle discretisation
    of the initial radial distribution with no sampling noise.
    """
    from scipy.stats import chi2

    n, d = int(n), int(d)
    if n < 1 or d < 1:
        raise ValueError(f"n and d must be >= 1, got n={n}, d={d}")
    if not (np.isfinite(init_scale) and init_scale >= 0):
        raise ValueError(f"init_scale must be >= 0, got {init_scale}")
    u = (np.arange(n) + 0.5) / n
    return init_scale * np.sqrt(chi2.ppf(u, d) / d)


# --------------------------------------------------------------------------- plots
def _fig(ncols=1, width=None, height=3.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width or 3.6 * ncols, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _colors():
    from helpers.plotting import COLORS

    return COLORS


def plot_sgd_vs_pde(sgd, ode, t_hist=10.0, bins=None):
    """Risk of SGD against the radial ODE (left) and the radii at ``t_hist`` (right)."""
    c = _colors()
    fig, (ax, bx) = _fig(2, width=8.0)
    ax.plot(ode.times, ode.risk, color=c["theory"], label="radial ODE ($N=\\infty$)")
    ax.plot(ode.times, ode.risk_finite_N, color=c["theory"], ls="--", lw=1.2,
            label=f"ODE + $1/N$ term ($N={ode.radii.shape[1]}$)")
    ax.plot(sgd.times, sgd.risk, "o", ms=4, color=c["sgd"], label=f"SGD, $d={sgd.d}$, $N={sgd.N}$")
    ax.set_yscale("log")
    ax.set_xlabel("time $t$ = steps $\\times$ lr")
    ax.set_ylabel("risk")
    ax.legend()
    i, j = sgd.at(t_hist), ode.at(t_hist)
    bins = bins if bins is not None else np.linspace(0, max(sgd.radii[i].max(), ode.radii[j].max()) * 1.05, 40)
    bx.hist(sgd.radii[i], bins=bins, color=c["sgd"], alpha=0.6, label="SGD neurons")
    bx.hist(ode.radii[j], bins=bins, histtype="step", color=c["theory"], lw=1.5, label="ODE particles")
    bx.set_xlabel(f"radius $\\|w_i\\|$ at $t={sgd.times[i]:g}$")
    bx.set_ylabel("neurons")
    bx.legend()
    return fig


def plot_two_regimes(single, spread):
    """Risk of the radial ODE from one radius (a bad fixed point) and from a spread of radii."""
    c = _colors()
    fig, (ax, bx) = _fig(2, width=8.0)
    for res, col, lab in [(single, c["other"], "all neurons at one radius"),
                          (spread, c["gd"], "spread of radii (real init)")]:
        keep = res.times > 0
        ax.plot(res.times[keep], res.risk[keep], color=col, label=lab)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time $t$")
    ax.set_ylabel("risk")
    ax.legend()
    bx.hist(spread.radii[-1], bins=40, color=c["gd"], alpha=0.7, label=f"spread, $t={spread.times[-1]:g}$")
    bx.axvline(single.radii[-1, 0], color=c["other"], lw=2, label="single radius, same $t$")
    bx.set_xlabel("radius")
    bx.set_ylabel("particles")
    bx.legend()
    return fig


def plot_fluctuation(fl):
    """Spread of the risk across seeds against the width, with an ``N^{-1/2}`` guide."""
    c = _colors()
    fig, (ax,) = _fig(1, width=4.6)
    ax.loglog(fl.Ns, fl.std, "o-", color=c["sgd"], label="std of the risk over seeds")
    guide = fl.std[0] * np.sqrt(fl.Ns[0] / fl.Ns)
    ax.loglog(fl.Ns, guide, "--", color=c["theory"], label="$\\propto N^{-1/2}$")
    ax.set_xlabel("neurons $N$")
    ax.set_ylabel(f"std of risk at $t={fl.t:g}$")
    ax.legend()
    return fig


def plot_radii_over_time(runs, ode, times, bins=None):
    """Histograms of the radii at several ``times``: SGD runs (dict label -> result) and the ODE."""
    c = _colors()
    fig, axes = _fig(len(times), width=2.6 * len(times), height=2.7)
    top = max(ode.radii.max(), *(np.nanmax(r.radii) for r in runs.values()))
    bins = bins if bins is not None else np.linspace(0, top * 1.02, 30)
    cols = [c["sgd"], c["other"], c["truth"], c["gd"]]
    for ax, t in zip(axes, times):
        for (lab, res), col in zip(runs.items(), cols):
            ax.hist(res.radii[res.at(t)], bins=bins, histtype="step", lw=1.4, color=col, label=lab, density=True)
        ax.hist(ode.radii[ode.at(t)], bins=bins, color=c["theory"], alpha=0.25, label="ODE", density=True)
        ax.set_title(f"$t={t:g}$")
        ax.set_xlabel("radius")
        ax.set_yticks([])
    axes[0].legend(fontsize=7)
    return fig


def plot_movement(mv):
    """Relative movement of the first layer against ``N`` in the two scalings."""
    c = _colors()
    fig, (ax,) = _fig(1, width=4.6)
    names = {"paired_mean_field": "mean-field ($1/N$)", "mean_field": "mean-field ($1/N$)",
             "kernel": "kernel ($1/\\sqrt{N}$)"}
    for i, (sc, col) in enumerate(zip(mv.scalings, [c["gd"], c["other"], c["truth"]])):
        ax.loglog(mv.Ns, mv.movement[i], "o-", color=col, label=names.get(sc, sc))
    ax.set_xlabel("neurons $N$")
    ax.set_ylabel("$\\|W_t - W_0\\|_F / \\|W_0\\|_F$")
    ax.legend()
    return fig


# --------------------------------------------------------------------------- widget
WIDGET_LR = 1e-2
WIDGET_T = 20.0


@functools.lru_cache(maxsize=8)
def _widget_run(N):
    # one SGD run per width, reused by every time-slider position (the callback then only plots)
    steps = int(round(WIDGET_T / WIDGET_LR))
    sgd = sgd_two_layer(N, PAPER["d"], steps, WIDGET_LR, seed=0, times=np.arange(0, WIDGET_T + 1e-9, 1.0),
                        n_eval=2000)
    ode = radial_pde(sgd.radii[0], WIDGET_T, dt=0.05, times=np.arange(0, WIDGET_T + 1e-9, 1.0))
    return sgd, ode


def particles_state(N, t):
    """What the widget shows: SGD (``lr = 0.01``, seed 0) and the ODE from the same radii, at time ``t``."""
    N, t = int(N), float(t)
    if N < 1:
        raise ValueError(f"N must be >= 1, got {N}")
    if not (0 <= t <= WIDGET_T):
        raise ValueError(f"t must lie in [0, {WIDGET_T:g}], got {t}")
    sgd, ode = _widget_run(N)
    return {"N": N, "t": t, "sgd": sgd, "ode": ode, "i": sgd.at(t), "j": ode.at(t)}


def plot_particles_state(state):
    """The widget's frame: radii histograms (SGD filled, ODE outline) and the risk curves.

    Drawn without a layout engine and with fixed ticks: a frame renders in about 0.1 s.
    """
    from matplotlib.figure import Figure

    c = _colors()
    sgd, ode, i, j = state["sgd"], state["ode"], state["i"], state["j"]
    fig = Figure(figsize=(7.6, 2.9))
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.17, top=0.89, wspace=0.22)
    ax, bx = fig.subplots(1, 2)
    bins = np.linspace(0, 7.0, 36)
    h_sgd, _ = np.histogram(np.clip(sgd.radii[i], 0, 6.99), bins, density=True)
    h_ode, _ = np.histogram(np.clip(ode.radii[j], 0, 6.99), bins, density=True)
    ax.stairs(h_sgd, bins, fill=True, color=c["sgd"], alpha=0.6, label="SGD neurons")
    ax.stairs(h_ode, bins, color=c["theory"], lw=1.5, label="ODE particles")
    ax.set_yticks([])
    ax.set_xlabel("radius ||w_i||")
    ax.set_title(f"N = {state['N']}, t = {state['t']:g}")
    ax.legend(loc="upper left", bbox_to_anchor=(0.06, 1.0), fontsize=8)
    ticks = np.array([0.03, 0.1, 0.3, 1.0, 3.0])
    bx.plot(ode.times, np.log10(ode.risk_finite_N), color=c["theory"], label="ODE + 1/N term")
    bx.plot(sgd.times, np.log10(sgd.risk), "o", ms=3, color=c["sgd"], label="SGD")
    bx.axvline(state["t"], color="#888888", lw=1)
    bx.set_yticks(np.log10(ticks), [f"{v:g}" for v in ticks])
    bx.set_ylim(np.log10(0.02), np.log10(4.0))
    bx.set_xlabel("time t")
    bx.set_title("risk (log scale)")
    bx.legend(loc="upper right")
    return fig


@widgets.register("ch03-particles")
def particles_widget():
    """N and t sliders over the neurons' radii (SGD vs the radial ODE) and the risk curve."""
    return widgets.Spec(particles_state, plot_particles_state,
                        {"N": [25, 50, 100, 200, 400], "t": [0.0, 2.0, 5.0, 10.0, 20.0]},
                        title="Neurons as particles: SGD (lr = 0.01) against the radial ODE",
                        default={"N": 100, "t": 10.0},
                        labels={"N": "neurons N", "t": "time t"})
