"""Contrastive and self-supervised representation learning (chapter 6, Arora's talk).

The latent-class world of Saunshi, Plevrakis, Arora, Khodak & Khandeparkar (ICML 2019,
"A theoretical analysis of contrastive unsupervised representation learning"):

- latent classes ``c = 0..C-1`` with probabilities ``rho_c``; class ``c`` generates points
  ``x ~ D_c``. Here ``D_c`` is the empirical distribution of a finite pool
  ``x = m_c + sigma * eps`` (Gaussian noise around a class mean);
- a *similar pair* draws ``c+ ~ rho`` and ``x, x+ ~ D_{c+}`` independently; each *negative*
  draws ``c- ~ rho`` and ``x- ~ D_{c-}``;
- the unsupervised (contrastive) loss of a representation ``f`` with ``k`` negatives is
  ``L_un(f) = E l({f(x)^T (f(x+) - f(x-_i))}_{i=1..k})`` with the logistic loss
  ``l(v) = log(1 + sum_i exp(-v_i))`` (natural log, so ``l(0) = log 2`` for one negative) or
  the hinge loss ``l(v) = max(0, 1 - min_i v_i)``;
- a downstream task is a set of distinct classes; the *mean classifier* scores class ``c`` by
  ``f(x)^T mu_c`` with ``mu_c = E_{x ~ D_c} f(x)``.

Everything is computed exactly on the pools where that is cheap (so that the Jensen bound is
an exact inequality between two computed numbers), by seeded Monte Carlo elsewhere.

The second half is the rotation pretext task of Gidaris, Singh & Komodakis (ICLR 2018) on
scikit-learn's 8x8 digits: a tiny convnet learns to tell the four rotations apart, and linear
probes measure how much its layers know about the digit classes.

torch is imported only inside the functions that train.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from helpers import repro, widgets

LOSSES = ("logistic", "hinge")

# ----------------------------------------------------------------------------------------
# input checks


def _check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_seed(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (every experiment is seeded), got {seed!r}")
    return int(seed)


def _check_loss(loss):
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return loss


def _normalise_rho(rho, num_classes=None):
    """Class probabilities from ``rho`` (probabilities or non-negative weights; None = uniform)."""
    if rho is None:
        if num_classes is None:
            raise ValueError("rho is None and the number of classes is unknown")
        return np.full(num_classes, 1.0 / num_classes)
    r = np.asarray(rho, dtype=float)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"rho must be a non-empty 1-D array of class probabilities, got shape {r.shape}")
    if num_classes is not None and r.size != num_classes:
        raise ValueError(f"rho has {r.size} entries but there are {num_classes} classes")
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError("rho must be finite and non-negative")
    total = r.sum()
    if total <= 0:
        raise ValueError("rho must have a positive entry")
    return r / total


def collision_probability(rho, negatives=1) -> float:
    """tau = P(c+ = c-) = sum_c rho_c^2 for two independent draws from ``rho``.

    ``rho`` may be probabilities or non-negative weights (normalised here). Saunshi et al.
    (2019) call this the probability that a negative sample collides with the positive class.
    With ``negatives = k`` independent negatives it is the probability that at least one of
    them shares the positive's class, ``sum_c rho_c (1 - (1 - rho_c)^k)``.
    """
    r = _normalise_rho(rho)
    k = _check_int("negatives", negatives)
    if k == 1:
        return float(np.sum(r * r))
    return float(np.sum(r * -np.expm1(k * np.log1p(-np.minimum(r, 1.0)))) if np.all(r < 1) else 1.0)


def logistic_loss(v):
    """l(v) = log(1 + sum_i exp(-v_i)) over the last axis (natural log), computed stably."""
    v = np.asarray(v, dtype=float)
    if v.shape[-1] == 1:  # one negative: the common case, done without temporaries
        return np.logaddexp(0.0, -v[..., 0])
    zeros = np.zeros(v.shape[:-1] + (1,))
    z = np.concatenate([zeros, -v], axis=-1)
    zmax = z.max(axis=-1, keepdims=True)
    return (zmax + np.log(np.exp(z - zmax).sum(axis=-1, keepdims=True)))[..., 0]


def hinge_loss(v):
    """l(v) = max(0, 1 - min_i v_i) over the last axis (the multi-class hinge of the paper)."""
    v = np.asarray(v, dtype=float)
    return np.maximum(0.0, 1.0 - v.min(axis=-1))


def loss_at_zero(loss="logistic", negatives=1) -> float:
    """l(0, ..., 0): log(1 + k) for the logistic loss with k negatives, 1 for the hinge loss."""
    _check_loss(loss)
    _check_int("negatives", negatives)
    return math.log1p(negatives) if loss == "logistic" else 1.0


def _loss_fn(loss):
    return logistic_loss if _check_loss(loss) == "logistic" else hinge_loss


# ----------------------------------------------------------------------------------------
# the latent-class world


@dataclass
class LatentClassData:
    """A finite latent-class world: ``X[c, i]`` is the i-th point of class c.

    ``X`` has shape (num_classes, samples_per_class, dim); ``means`` (num_classes, dim);
    ``rho`` the class probabilities; ``sigma`` the noise level.
    """

    X: np.ndarray
    means: np.ndarray
    rho: np.ndarray
    sigma: float

    @property
    def num_classes(self) -> int:
        return self.X.shape[0]

    @property
    def samples_per_class(self) -> int:
        return self.X.shape[1]

    @property
    def dim(self) -> int:
        return self.X.shape[2]

    @property
    def tau(self) -> float:
        return collision_probability(self.rho)

    def flat(self):
        """(points, labels): the pool as an (N, dim) array and its class labels."""
        C, n, d = self.X.shape
        return self.X.reshape(C * n, d), np.repeat(np.arange(C), n)


def latent_class_data(num_classes, dim, samples_per_class, rho=None, seed=0, sigma=1.0, means=None,
                      mean_scale=1.0) -> LatentClassData:
    """Sample a latent-class world: ``x = m_c + sigma * eps`` with ``eps ~ N(0, I_dim)``.

    The class means are drawn first, ``m_c ~ N(0, mean_scale^2 I_dim)`` (unless ``means`` is
    given, e.g. to draw a fresh sample of an existing world), then the noise, from one
    generator seeded by ``seed``: the same seed gives the same ``eps`` for every ``sigma``,
    so a sweep over ``sigma`` changes the noise level and nothing else.
    ``rho`` (probabilities or non-negative weights, None = uniform) only enters through the
    way pairs and tasks are drawn; every class gets ``samples_per_class`` points.
    """
    C = _check_int("num_classes", num_classes, 2)
    d = _check_int("dim", dim)
    n = _check_int("samples_per_class", samples_per_class, 1)
    r = _normalise_rho(rho, C)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite non-negative number, got {sigma!r}")
    if not np.isfinite(mean_scale) or mean_scale <= 0:
        raise ValueError(f"mean_scale must be positive, got {mean_scale!r}")
    gen = repro.rng(_check_seed(seed))
    drawn = gen.standard_normal((C, d)) * mean_scale
    if means is None:
        means = drawn
    else:
        means = np.asarray(means, dtype=float)
        if means.shape != (C, d):
            raise ValueError(f"means must have shape (num_classes, dim) = {(C, d)}, got {means.shape}")
    eps = gen.standard_normal((C, n, d))
    X = means[:, None, :] + float(sigma) * eps
    return LatentClassData(X=X, means=means.copy(), rho=r, sigma=float(sigma))


def _check_data(data):
    if not isinstance(data, LatentClassData):
        raise ValueError("data must be a LatentClassData (make one with latent_class_data)")
    return data


# ----------------------------------------------------------------------------------------
# representations as numpy maps


def features(f, X) -> np.ndarray:
    """f applied to the points ``X`` (..., dim) as a float64 numpy array (..., rep_dim).

    ``f`` may be a torch module, a matrix ``W`` (rep_dim, dim) meaning ``f(x) = W x``, a
    callable on numpy arrays, or None for the raw input.
    """
    X = np.asarray(X, dtype=float)
    if f is None:
        return X
    if isinstance(f, np.ndarray):
        if f.ndim != 2 or f.shape[1] != X.shape[-1]:
            raise ValueError(f"a matrix representation must have shape (rep_dim, {X.shape[-1]}), got {f.shape}")
        return X @ f.T
    if hasattr(f, "parameters") and hasattr(f, "forward"):  # a torch module
        import torch

        p = next(iter(f.parameters()), None)
        dtype = p.dtype if p is not None else torch.float64
        with torch.no_grad():
            flat = torch.as_tensor(X.reshape(-1, X.shape[-1]), dtype=dtype)
            out = f(flat).double().cpu().numpy()
        return out.reshape(X.shape[:-1] + (out.shape[-1],))
    if callable(f):
        flat = np.asarray(f(X.reshape(-1, X.shape[-1])), dtype=float)
        return flat.reshape(X.shape[:-1] + (flat.shape[-1],))
    raise ValueError("f must be a torch module, a (rep_dim, dim) matrix, a callable or None")


# ----------------------------------------------------------------------------------------
# losses of a representation


def _tasks(tasks, C, rho, way):
    """(list of class tuples, weights summing to 1)."""
    if isinstance(tasks, str):
        if tasks not in ("rho", "uniform"):
            raise ValueError(f"tasks must be 'rho', 'uniform' or a list of class tuples, got {tasks!r}")
        if way > C:
            raise ValueError(f"way={way} tasks need at least {way} classes, there are {C}")
        subsets = list(itertools.combinations(range(C), way))
        if tasks == "uniform":
            w = np.ones(len(subsets))
        else:  # ordered draws from rho^way conditioned on distinct: each set has weight prod(rho)
            w = np.array([np.prod(rho[list(s)]) for s in subsets])
        if w.sum() <= 0:
            raise ValueError("no task has positive probability (fewer than `way` classes have rho > 0)")
        return subsets, w / w.sum()
    subsets = [tuple(int(c) for c in t) for t in tasks]
    if not subsets:
        raise ValueError("tasks is empty")
    for t in subsets:
        if len(t) < 2 or len(set(t)) != len(t) or min(t) < 0 or max(t) >= C:
            raise ValueError(f"task {t} must list >= 2 distinct classes in 0..{C - 1}")
    return subsets, np.full(len(subsets), 1.0 / len(subsets))


def mean_classifier_loss(f, data, tasks="rho", way=2, loss="logistic") -> float:
    """Average supervised loss of the mean classifier over downstream tasks (Saunshi et al. 2019).

    For a task T (a set of distinct classes) the mean classifier scores class c by
    ``f(x)^T mu_c`` with ``mu_c`` the mean of f over class c's pool; a point x of class
    c in T pays ``l({f(x)^T (mu_c - mu_c')}_{c' in T, c' != c})``. The labels of a task are
    uniform over T, points are averaged over each class pool. ``tasks``:

    - ``"rho"`` (default): every set of ``way`` classes, weighted by the product of their
      rho's, i.e. the tasks drawn as ``way`` independent classes from rho conditioned on
      being distinct (the paper's average supervised loss);
    - ``"uniform"``: every set of ``way`` classes with equal weight;
    - a list of class tuples, equally weighted.
    """
    data = _check_data(data)
    way = _check_int("way", way, 2)
    lf = _loss_fn(loss)
    F = features(f, data.X)  # (C, n, r)
    mu = F.mean(axis=1)  # (C, r)
    S = np.einsum("cir,kr->cik", F, mu)  # S[c, i, k] = f(x_ci)^T mu_k
    subsets, weights = _tasks(tasks, data.num_classes, data.rho, way)
    total = 0.0
    for T, w in zip(subsets, weights):
        T = list(T)
        per_label = []
        for c in T:
            others = [k for k in T if k != c]
            v = S[c][:, [c]] - S[c][:, others]  # (n, |T|-1)
            per_label.append(lf(v).mean())
        total += w * float(np.mean(per_label))
    return float(total)


def mean_classifier_accuracy(f, data, tasks="rho", way=2) -> float:
    """Average accuracy of the mean classifier over downstream tasks (same tasks as the loss).

    A point of class c in task T is correct when ``f(x)^T mu_c`` beats every other class of T
    (ties count as errors).
    """
    data = _check_data(data)
    way = _check_int("way", way, 2)
    F = features(f, data.X)
    mu = F.mean(axis=1)
    S = np.einsum("cir,kr->cik", F, mu)
    subsets, weights = _tasks(tasks, data.num_classes, data.rho, way)
    total = 0.0
    for T, w in zip(subsets, weights):
        T = list(T)
        per_label = [np.mean(S[c][:, [c]][:, 0] > S[c][:, [k for k in T if k != c]].max(axis=1)) for c in T]
        total += w * float(np.mean(per_label))
    return float(total)


def unsupervised_loss(f, data, negatives=1, loss="logistic", method="auto", num_samples=200_000, seed=0,
                      part="all") -> float:
    """The contrastive loss L_un(f) of Saunshi et al. (2019) on the world ``data``.

    ``method="exact"`` (one negative only) averages over every class pair (weighted by rho)
    and every triple (x, x+, x-) of pool points: O(C^2 n^3) work, the exact expectation
    under the pools' empirical distributions. ``method="mc"`` draws ``num_samples`` seeded
    tuples. ``"auto"`` is exact for one negative and pools of at most 60 points per class.

    ``part`` (exact method only): ``"all"``; ``"same"``, the loss conditioned on the negative
    coming from the positive's class (c- = c+, probability tau); ``"different"``, conditioned on
    c- != c+. Then ``L_un = tau L_same + (1 - tau) L_different``.
    """
    data = _check_data(data)
    k = _check_int("negatives", negatives)
    lf = _loss_fn(loss)
    if method not in ("auto", "exact", "mc"):
        raise ValueError(f"method must be 'auto', 'exact' or 'mc', got {method!r}")
    n = data.samples_per_class
    if method == "auto":
        method = "exact" if (k == 1 and n <= 60) else "mc"
    if method == "exact" and k != 1:
        raise ValueError("the exact unsupervised loss is implemented for one negative; use method='mc'")
    if part not in ("all", "same", "different"):
        raise ValueError(f"part must be 'all', 'same' or 'different', got {part!r}")
    if part != "all" and method != "exact":
        raise ValueError("part='same'/'different' needs method='exact' (one negative, <= 60 points per class)")
    F = features(f, data.X)
    C = data.num_classes
    rho = data.rho
    if method == "exact":
        pair = np.zeros((C, C))  # pair[c+, c-]: the mean loss over the pools of that class pair
        flat = F.reshape(C * n, -1)
        for cp in range(C):
            G = F[cp] @ F[cp].T  # (n, n): f(x)^T f(x+)
            H = F[cp] @ flat.T  # (n, C n): f(x)^T f(x-) for x- in every class
            v = G[:, :, None] - H[:, None, :]  # (i, j, (c-, l))
            pair[cp] = lf(v[..., None]).reshape(n * n, C, n).mean(axis=(0, 2))
        w = np.outer(rho, rho)
        if part == "same":
            w = np.diag(np.diag(w))
        elif part == "different":
            w = w - np.diag(np.diag(w))
        if w.sum() <= 0:
            raise ValueError(f"part={part!r} has probability zero under rho")
        return float(np.sum(w * pair) / w.sum())
    m = _check_int("num_samples", num_samples)
    gen = repro.rng(_check_seed(seed))
    cp = gen.choice(C, size=m, p=rho)
    i, j = gen.integers(n, size=m), gen.integers(n, size=m)
    cm = gen.choice(C, size=(m, k), p=rho)
    l_idx = gen.integers(n, size=(m, k))
    fx, fp, fm = F[cp, i], F[cp, j], F[cm, l_idx]
    v = np.einsum("mr,mr->m", fx, fp)[:, None] - np.einsum("mr,mkr->mk", fx, fm)
    return float(lf(v).mean())


@dataclass
class BoundCheck:
    """Both sides of the Jensen bound L_un(f) >= tau l(0) + (1 - tau) L_sup^mu(f)."""

    L_un: float
    L_sup_mu: float
    tau: float
    ell0: float

    @property
    def rhs(self) -> float:
        return self.tau * self.ell0 + (1 - self.tau) * self.L_sup_mu

    @property
    def gap(self) -> float:
        return self.L_un - self.rhs

    @property
    def sup_bound(self) -> float:
        """The bound solved for the supervised loss: L_sup^mu <= (L_un - tau l(0)) / (1 - tau)."""
        return (self.L_un - self.tau * self.ell0) / (1 - self.tau)


def bound_check(f, data, loss="logistic") -> BoundCheck:
    """Evaluate both sides of the one-negative Jensen bound exactly on ``data``."""
    data = _check_data(data)
    if data.samples_per_class > 60:
        raise ValueError("bound_check computes L_un exactly: use at most 60 samples per class")
    return BoundCheck(
        L_un=unsupervised_loss(f, data, 1, loss=loss, method="exact"),
        L_sup_mu=mean_classifier_loss(f, data, "rho", 2, loss=loss),
        tau=data.tau,
        ell0=loss_at_zero(loss, 1),
    )


@dataclass
class BoundSweep:
    sigmas: np.ndarray
    L_un: np.ndarray
    L_sup_mu: np.ndarray
    rhs: np.ndarray
    tau: float
    ell0: float

    @property
    def gap(self) -> np.ndarray:
        return self.L_un - self.rhs

    def slope(self, sigma_max=0.3) -> float:
        """Log-log slope of the gap against sigma over 0 < sigma <= sigma_max."""
        keep = (self.sigmas > 0) & (self.sigmas <= sigma_max)
        if keep.sum() < 2:
            raise ValueError("need at least two positive sigmas <= sigma_max to fit a slope")
        return float(np.polyfit(np.log(self.sigmas[keep]), np.log(self.gap[keep]), 1)[0])


def bound_sweep(sigmas, num_classes=10, dim=20, rep_dim=10, samples_per_class=30, rho=None, seed=0,
                loss="logistic", W=None) -> BoundSweep:
    """The Jensen bound for a fixed linear map f(x) = W x on worlds with noise levels ``sigmas``.

    The same means and noise draws are used at every sigma. ``W`` defaults to a seeded
    Gaussian (rep_dim, dim) matrix with entries of variance 1/dim.
    """
    sig = np.asarray(sigmas, dtype=float)
    if sig.ndim != 1 or sig.size == 0 or np.any(~np.isfinite(sig)) or np.any(sig < 0):
        raise ValueError("sigmas must be a non-empty 1-D array of non-negative numbers")
    if W is None:
        W = repro.rng(_check_seed(seed) if not isinstance(seed, np.random.Generator) else seed).standard_normal(
            (rep_dim, dim)) / math.sqrt(dim * rep_dim)
    rows = []
    for s in sig:
        data = latent_class_data(num_classes, dim, samples_per_class, rho, seed=seed, sigma=s)
        b = bound_check(W, data, loss)
        rows.append((b.L_un, b.L_sup_mu, b.rhs))
    rows = np.array(rows)
    return BoundSweep(sig, rows[:, 0], rows[:, 1], rows[:, 2], tau=collision_probability(
        _normalise_rho(rho, num_classes)), ell0=loss_at_zero(loss, 1))


# ----------------------------------------------------------------------------------------
# contrastive training


@dataclass
class ContrastiveResult:
    """A trained representation and how training went.

    ``f`` is the trained torch module (a bias-free linear map by default), ``f0`` a copy of it
    at initialisation (the 'random representation'), ``history`` the minibatch loss at each
    step. ``diverged`` is True (and ``diverged_at`` the step) if the loss became non-finite;
    training stops there.
    """

    f: object
    f0: object
    history: np.ndarray
    negatives: int
    block_size: int
    batch_size: int
    points_per_step: int
    diverged: bool = False
    diverged_at: int | None = None
    snapshots: dict = field(default_factory=dict)

    @property
    def W(self) -> np.ndarray:
        """The weight matrix of a linear f (rep_dim, dim)."""
        return self.f.weight.detach().double().cpu().numpy().copy()


def contrastive_gradient(W, anchors, positives, negatives, loss="logistic"):
    """Minibatch loss and its gradient in W for the linear representation f(x) = W x.

    ``anchors`` (B, d); ``positives`` (B, d) (block means); ``negatives`` (B, k, d) (block
    means). With ``v_j = (W a)^T W (p - n_j)`` the chain rule gives
    ``dL/dW = W M`` with the symmetric ``M = mean_b sum_j g_bj (D_bj a_b^T + a_b D_bj^T)``,
    ``D_bj = p_b - n_bj`` and ``g_bj = dl/dv_j``: the whole step costs a few small matrix
    products (the tests check it against torch's autograd).
    """
    _check_loss(loss)
    U = anchors @ W.T  # (B, r)
    D = positives[:, None, :] - negatives  # (B, k, d)
    WD = D @ W.T  # (B, k, r)
    v = np.einsum("br,bkr->bk", U, WD)
    B = len(v)
    if loss == "logistic":
        z = np.concatenate([np.zeros((B, 1)), -v], axis=1)
        zmax = z.max(axis=1, keepdims=True)
        e = np.exp(z - zmax)
        lse = zmax[:, 0] + np.log(e.sum(axis=1))
        value = lse.mean()
        g = -(e[:, 1:] / e.sum(axis=1, keepdims=True))  # dl/dv
    else:
        vmin = v.min(axis=1)
        value = np.maximum(0.0, 1.0 - vmin).mean()
        g = np.zeros_like(v)
        active = 1.0 - vmin > 0
        g[np.arange(B), v.argmin(axis=1)] = -active.astype(float)
    Dsum = np.einsum("bk,bkd->bd", g, D)  # sum_j g_bj D_bj
    M = Dsum.T @ anchors
    M = (M + M.T) / B
    return float(value), W @ M


def train_contrastive(data, rep_dim, negatives=1, steps=3000, seed=0, block_size=None, lr=0.05, batch_size=32,
                      loss="logistic", init_scale=0.1, weight_decay=0.0, checkpoints=()) -> ContrastiveResult:
    """Minimise the contrastive loss by plain SGD over a linear representation f(x) = W x.

    Each step draws ``batch_size`` tuples from the world: c+ ~ rho, an anchor x and
    ``b = block_size`` positives from class c+, and ``negatives`` blocks of b points, each
    block from its own class c- ~ rho. The loss of a tuple is
    ``l({f(x)^T (mean f(x+) - mean f(block of x-_i))}_i)``: with b = 1 the plain objective of
    Saunshi et al. (2019), with b > 1 their blocked ('CURL') variant. A tuple uses
    ``1 + b (1 + negatives)`` points (``points_per_step`` counts them, to compare at equal
    data). ``W`` starts as ``init_scale`` times a Gaussian with entries of variance 1/dim.

    The map is linear, so the gradient has a closed form (:func:`contrastive_gradient`) and
    the loop runs in numpy (float64), about ten times faster than autograd at this size;
    ``f`` and ``f0`` are returned as torch ``Linear`` modules; ``snapshots`` maps each step in
    ``checkpoints`` (0..steps) to the weight matrix before that step's update.
    """
    import torch

    data = _check_data(data)
    r = _check_int("rep_dim", rep_dim)
    k = _check_int("negatives", negatives)
    T = _check_int("steps", steps, 0)
    b = 1 if block_size is None else _check_int("block_size", block_size)
    B = _check_int("batch_size", batch_size)
    _check_loss(loss)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive step size, got {lr!r}")
    if not (np.isfinite(init_scale) and init_scale > 0):
        raise ValueError(f"init_scale must be positive, got {init_scale!r}")
    if not (np.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    gen = repro.rng(_check_seed(seed))
    C, n, d = data.X.shape
    W0 = gen.standard_normal((r, d)) * init_scale / math.sqrt(d)
    pool = data.X.reshape(C * n, d)
    # every index for every step drawn up front (vectorised and reproducible)
    cp = gen.choice(C, size=(T, B), p=data.rho)
    anchor = cp * n + gen.integers(n, size=(T, B))
    pos = cp[..., None] * n + gen.integers(n, size=(T, B, b))
    cm = gen.choice(C, size=(T, B, k), p=data.rho)
    neg = cm[..., None] * n + gen.integers(n, size=(T, B, k, b))
    marks = sorted({_check_int("checkpoint", c, 0) for c in checkpoints})
    if marks and marks[-1] > T:
        raise ValueError(f"checkpoints must lie in 0..steps={T}, got {marks[-1]}")
    snapshots = {}
    W = W0.copy()
    history = np.empty(T)
    diverged_at = None
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(T):
            if t in marks:
                snapshots[t] = W.copy()
            a = pool[anchor[t]]
            p = pool[pos[t]].mean(axis=1) if b > 1 else pool[pos[t, :, 0]]
            q = pool[neg[t]].mean(axis=2) if b > 1 else pool[neg[t, :, :, 0]]
            value, grad = contrastive_gradient(W, a, p, q, loss)
            history[t] = value
            if not (math.isfinite(value) and np.all(np.isfinite(grad))):
                diverged_at = t
                history = history[: t + 1]
                break
            W -= lr * (grad + weight_decay * W)
    if diverged_at is None and T in marks:
        snapshots[T] = W.copy()

    def module(M):
        lin = torch.nn.Linear(d, r, bias=False).double()
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(M))
        return lin

    return ContrastiveResult(f=module(W), f0=module(W0), history=history, negatives=k, block_size=b,
                             batch_size=B, points_per_step=B * (1 + b * (1 + k)),
                             diverged=diverged_at is not None, diverged_at=diverged_at, snapshots=snapshots)


# ----------------------------------------------------------------------------------------
# downstream evaluation with few labels


def few_shot_accuracy(f, labelled, test, labels_per_class, seed=0, trials=20, rule="nearest",
                      classes=None) -> float:
    """Accuracy of a mean classifier built from ``labels_per_class`` labelled points per class.

    Each trial draws the labelled points from ``labelled`` (a LatentClassData world), averages
    their features per class, and classifies every point of ``test`` (a world with the same
    classes): ``rule="nearest"`` picks the nearest class mean in Euclidean distance,
    ``rule="inner"`` the largest ``f(x)^T mu_c`` (the paper's mean classifier). ``classes``
    restricts the task to a subset of classes (default all). Returns the mean over trials.
    """
    labelled, test = _check_data(labelled), _check_data(test)
    if labelled.num_classes != test.num_classes or labelled.dim != test.dim:
        raise ValueError("labelled and test must come from the same world (same classes and dim)")
    m = _check_int("labels_per_class", labels_per_class)
    if m > labelled.samples_per_class:
        raise ValueError(f"labels_per_class={m} exceeds the {labelled.samples_per_class} points per class")
    trials = _check_int("trials", trials)
    if rule not in ("nearest", "inner"):
        raise ValueError(f"rule must be 'nearest' or 'inner', got {rule!r}")
    cls = list(range(labelled.num_classes)) if classes is None else [int(c) for c in classes]
    if len(cls) < 2 or len(set(cls)) != len(cls) or min(cls) < 0 or max(cls) >= labelled.num_classes:
        raise ValueError("classes must list >= 2 distinct valid class indices")
    FL = features(f, labelled.X[cls])  # (K, n, r)
    FT = features(f, test.X[cls])  # (K, nt, r)
    K, nt = FT.shape[0], FT.shape[1]
    flat = FT.reshape(K * nt, -1)
    truth = np.repeat(np.arange(K), nt)
    gen = repro.rng(_check_seed(seed))
    acc = []
    for _ in range(trials):
        idx = np.argsort(gen.random((K, labelled.samples_per_class)), axis=1)[:, :m]
        mu = np.take_along_axis(FL, idx[..., None], axis=1).mean(axis=1)  # (K, r)
        scores = flat @ mu.T
        if rule == "nearest":
            scores = scores - 0.5 * np.sum(mu * mu, axis=1)
        acc.append(np.mean(scores.argmax(axis=1) == truth))
    return float(np.mean(acc))


# ----------------------------------------------------------------------------------------
# rotation prediction on the digits (Gidaris et al. 2018)


def _torch_device(device):
    """``device`` as a torch.device, with a ValueError (not a RuntimeError) when it is unusable."""
    import torch

    from helpers.repro import torch_device

    return torch.device(torch_device(device))


def rotate_images(images) -> tuple[np.ndarray, np.ndarray]:
    """Every image in its four rotations (0, 90, 180, 270 degrees) and the rotation labels 0..3."""
    imgs = np.asarray(images, dtype=float)
    if imgs.ndim != 3 or imgs.shape[1] != imgs.shape[2]:
        raise ValueError(f"images must have shape (N, H, H) (square, for rotations), got {imgs.shape}")
    rot = np.concatenate([np.rot90(imgs, k, axes=(1, 2)) for k in range(4)])
    labels = np.repeat(np.arange(4), len(imgs))
    return rot, labels


def _convnet(size, channels, hidden):
    import torch.nn as nn

    c1, c2 = channels
    s = size // 4
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # conv1
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # conv2
        nn.Flatten(), nn.Linear(c2 * s * s, hidden), nn.ReLU(),  # fc
        nn.Linear(hidden, 4),
    )


LAYERS = {"conv1": 3, "conv2": 6, "fc": 9}  # layer name -> end of its block in the Sequential


@dataclass
class RotationResult:
    """The rotation-prediction network after training, its initial copy and its scores."""

    net: object
    net0: object
    history: np.ndarray
    train_accuracy: float
    test_accuracy: float  # rotations of images the net never saw
    train_index: np.ndarray
    test_index: np.ndarray


def rotation_pretext(images, steps=300, seed=0, train_index=None, batch_size=64, lr=6e-3,
                     channels=(16, 32), hidden=64, device="cpu") -> RotationResult:
    """Train a tiny convnet to predict which of 4 rotations was applied (no labels needed).

    ``images`` (N, H, H) with H divisible by 4, values roughly in [0, 1]. The net trains
    (Adam, float32) on the four rotations of ``images[train_index]`` (default: a seeded 75%)
    and is scored on the four rotations of the other images. Architecture: two blocks
    conv3x3-ReLU-maxpool (``channels``), a hidden layer of ``hidden`` ReLU units, 4 outputs.
    ``device`` (``"cpu"`` or ``"cuda"``; chapters pass ``repro.setup(...).device``) is where
    it trains; the returned nets live on the CPU either way.
    """
    import torch

    dev = _torch_device(device)

    imgs = np.asarray(images, dtype=float)
    if imgs.ndim != 3 or imgs.shape[1] != imgs.shape[2] or imgs.shape[1] % 4:
        raise ValueError(f"images must have shape (N, H, H) with H divisible by 4, got {imgs.shape}")
    N = len(imgs)
    if N < 4:
        raise ValueError("need at least 4 images")
    T = _check_int("steps", steps, 0)
    B = _check_int("batch_size", batch_size)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be positive, got {lr!r}")
    if len(channels) != 2:
        raise ValueError("channels must be a pair (conv1, conv2)")
    gen = repro.rng(_check_seed(seed))
    if train_index is None:
        perm = gen.permutation(N)
        train_index = np.sort(perm[: int(0.75 * N)])
    train_index = np.asarray(train_index, dtype=int)
    if train_index.ndim != 1 or train_index.size == 0 or train_index.min() < 0 or train_index.max() >= N:
        raise ValueError("train_index must be a non-empty 1-D array of image indices")
    test_index = np.setdiff1d(np.arange(N), train_index)
    torch.manual_seed(int(gen.integers(2**31)))
    net = _convnet(imgs.shape[1], tuple(int(c) for c in channels), _check_int("hidden", hidden))
    net0 = copy.deepcopy(net)
    net.to(dev)
    Xr, yr = rotate_images(imgs[train_index])
    Xt = torch.as_tensor(Xr[:, None], dtype=torch.float32, device=dev)
    yt = torch.as_tensor(yr, device=dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    batches = torch.as_tensor(gen.integers(len(Xt), size=(T, B)), device=dev)
    losses = torch.empty(T, device=dev)
    for t in range(T):
        out = net(Xt[batches[t]])
        loss = torch.nn.functional.cross_entropy(out, yt[batches[t]])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses[t] = loss.detach()  # no device sync per step
    history = losses.cpu().double().numpy()
    net.cpu()

    def accuracy(index):
        if len(index) == 0:
            return float("nan")
        X, y = rotate_images(imgs[index])
        with torch.no_grad():
            pred = net(torch.as_tensor(X[:, None], dtype=torch.float32)).argmax(1).numpy()
        return float(np.mean(pred == y))

    return RotationResult(net=net, net0=net0, history=history, train_accuracy=accuracy(train_index),
                          test_accuracy=accuracy(test_index), train_index=train_index, test_index=test_index)


def layer_features(net, images) -> dict[str, np.ndarray]:
    """Flattened activations of each block of a rotation net ('conv1', 'conv2', 'fc') on upright images."""
    import torch

    imgs = np.asarray(images, dtype=float)
    if imgs.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W), got {imgs.shape}")
    out = {}
    with torch.no_grad():
        h = torch.as_tensor(imgs[:, None], dtype=torch.float32)
        start = 0
        for name, end in LAYERS.items():
            for layer in list(net)[start:end]:
                h = layer(h)
            start = end
            out[name] = h.reshape(len(imgs), -1).double().numpy()
    return out


@dataclass
class ProbeResult:
    test_accuracy: float
    train_accuracy: float
    n_train: int
    n_test: int


def linear_probe(features, labels, n_train, seed=0, C=1.0, standardize=True, train_index=None,
                 max_iter=300) -> ProbeResult:
    """Logistic regression on frozen features with ``n_train`` labelled points; accuracy on the rest.

    The labelled points are a stratified seeded draw (scikit-learn's ``train_test_split`` with
    ``train_size=n_train, stratify=labels, random_state=seed``) unless ``train_index`` is
    given; the others are the test set. With ``standardize`` the features are centred and
    scaled by the labelled points' statistics (constant features are left at 0). ``C`` is the
    inverse L2 strength of scikit-learn's ``LogisticRegression`` (lbfgs, multinomial).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(features, dtype=float)
    y = np.asarray(labels)
    if X.ndim != 2:
        raise ValueError(f"features must be a 2-D array (points, features), got shape {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"labels must be 1-D with one label per row of features ({len(X)}), got {y.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("features contain non-finite values")
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError("labels must contain at least two classes")
    if not (np.isfinite(C) and C > 0):
        raise ValueError(f"C must be positive, got {C!r}")
    N = len(X)
    if train_index is None:
        n = _check_int("n_train", n_train, 1)
        if n < len(classes) or n >= N:
            raise ValueError(f"n_train must be between the number of classes ({len(classes)}) and {N - 1}, got {n}")
        tr, te = train_test_split(np.arange(N), train_size=n, stratify=y, random_state=_check_seed(seed))
    else:
        tr = np.asarray(train_index, dtype=int)
        if tr.ndim != 1 or tr.size == 0 or tr.min() < 0 or tr.max() >= N or len(np.unique(tr)) != len(tr):
            raise ValueError("train_index must list distinct row indices")
        te = np.setdiff1d(np.arange(N), tr)
        if te.size == 0:
            raise ValueError("train_index leaves no test points")
        if len(np.unique(y[tr])) < 2:
            raise ValueError("the labelled points must contain at least two classes")
    Xtr, Xte = X[tr], X[te]
    if standardize:
        scaler = StandardScaler().fit(Xtr)
        Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    clf = LogisticRegression(C=C, max_iter=max_iter)
    clf.fit(Xtr, y[tr])
    return ProbeResult(test_accuracy=float(clf.score(Xte, y[te])), train_accuracy=float(clf.score(Xtr, y[tr])),
                       n_train=len(tr), n_test=len(te))


# ----------------------------------------------------------------------------------------
# the chapter's experiments: one default world, cached trainings, tables and figures

DEFAULT_WORLD = dict(num_classes=10, dim=20, rho=tuple(range(1, 11)), rep_dim=5,
                     train_per_class=200, eval_per_class=30, test_per_class=200)


@dataclass
class World:
    """Three samples of one latent-class world: unlabelled/labelled pool, exact-loss pool, test pool."""

    train: LatentClassData
    eval: LatentClassData
    test: LatentClassData
    rep_dim: int


def make_world(sigma=2.0, seed=0, num_classes=10, dim=20, rho=None, rep_dim=10, train_per_class=200,
               eval_per_class=30, test_per_class=200) -> World:
    """One world (same class means) sampled three times with seeds seed, seed+1, seed+2.

    ``train`` supplies the unlabelled tuples and the few labelled points, ``eval`` (small)
    the exact losses, ``test`` the downstream accuracy.
    """
    seed = _check_seed(seed)
    train = latent_class_data(num_classes, dim, train_per_class, rho, seed=seed, sigma=sigma)
    ev = latent_class_data(num_classes, dim, eval_per_class, rho, seed=seed + 1, sigma=sigma, means=train.means)
    test = latent_class_data(num_classes, dim, test_per_class, rho, seed=seed + 2, sigma=sigma, means=train.means)
    return World(train, ev, test, _check_int("rep_dim", rep_dim))


def default_world(sigma=2.0, seed=0) -> World:
    """The chapter's world (``DEFAULT_WORLD``) at noise level ``sigma``; cached, do not modify."""
    return _default_world(float(sigma), int(seed))


@functools.lru_cache(maxsize=8)
def _default_world(sigma, seed):
    cfg = dict(DEFAULT_WORLD)
    return make_world(sigma, seed, cfg["num_classes"], cfg["dim"], cfg["rho"], cfg["rep_dim"],
                      cfg["train_per_class"], cfg["eval_per_class"], cfg["test_per_class"])


def batch_for(points_per_step, negatives=1, block_size=1) -> int:
    """Tuples per step so that a step uses about ``points_per_step`` points (equal-data comparisons)."""
    per_tuple = 1 + block_size * (1 + negatives)
    return max(1, int(round(points_per_step / per_tuple)))


def _marks(steps):
    return tuple(sorted({0, steps} | {m for m in (10, 30, 100, 300, 1000, 3000, 10000) if m < steps}))


def trained(negatives=1, block_size=1, sigma=2.0, steps=3000, seed=0, points_per_step=384, lr=0.02) -> ContrastiveResult:
    """A contrastive representation of ``default_world(sigma, seed)`` (cached: the chapter's
    experiments and its widget share the runs). The batch holds ``batch_for(points_per_step)``
    tuples, so runs with different negatives or blocks see the same amount of data."""
    return _trained(int(negatives), int(block_size), float(sigma), int(steps), int(seed), int(points_per_step),
                    float(lr))


@functools.lru_cache(maxsize=32)
def _trained(negatives, block_size, sigma, steps, seed, points_per_step, lr):
    w = default_world(sigma, seed)
    return train_contrastive(w.train, w.rep_dim, negatives, steps, seed=seed, block_size=block_size, lr=lr,
                             batch_size=batch_for(points_per_step, negatives, block_size),
                             checkpoints=_marks(steps))


@dataclass
class TrainingCurve:
    """Exact losses and downstream accuracy along one training run."""

    steps: np.ndarray
    L_un: np.ndarray
    L_sup_mu: np.ndarray
    rhs: np.ndarray  # tau l(0) + (1 - tau) L_sup_mu: what Jensen says L_un cannot go below
    accuracy: np.ndarray  # 10-way nearest-mean accuracy with few labels
    accuracy_raw: float
    L_sup_mu_raw: float
    labels_per_class: int
    tau: float


def training_curve(result, world, labels_per_class=5, seed=0, trials=20) -> TrainingCurve:
    """Evaluate the snapshots of a training run on ``world`` (exact losses on ``world.eval``)."""
    if not result.snapshots:
        raise ValueError("the run has no snapshots: train with checkpoints=...")
    steps = np.array(sorted(result.snapshots))
    rows = []
    for t in steps:
        W = result.snapshots[t]
        b = bound_check(W, world.eval)
        acc = few_shot_accuracy(W, world.train, world.test, labels_per_class, seed=seed, trials=trials)
        rows.append((b.L_un, b.L_sup_mu, b.rhs, acc))
    rows = np.array(rows)
    return TrainingCurve(steps, rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3],
                         accuracy_raw=few_shot_accuracy(None, world.train, world.test, labels_per_class, seed=seed,
                                                        trials=trials),
                         L_sup_mu_raw=mean_classifier_loss(None, world.eval),
                         labels_per_class=labels_per_class, tau=world.eval.tau)


@dataclass
class ObjectiveRow:
    """One training objective at equal data: what it reaches downstream."""

    negatives: int
    block_size: int
    batch_size: int
    L_un: float  # plain one-negative loss, exact on the eval pool
    L_sup_mu: float  # 2-way mean-classifier loss
    acc2: float  # 2-way mean-classifier accuracy
    acc3: float  # 3-way mean-classifier accuracy
    acc10: float  # 10-way few-shot nearest-mean accuracy

    @property
    def name(self) -> str:
        return f"k={self.negatives}" + (f", block {self.block_size}" if self.block_size > 1 else "")


def compare_objectives(variants=((1, 1), (2, 1), (4, 1), (8, 1), (1, 2), (1, 4)), sigma=2.0, steps=3000, seed=0,
                       points_per_step=384, lr=0.02, labels_per_class=5) -> list[ObjectiveRow]:
    """Train one representation per (negatives, block_size) at equal data and score each one."""
    w = default_world(sigma, seed)
    rows = []
    for k, b in variants:
        res = trained(int(k), int(b), sigma, steps, seed, points_per_step, lr)
        if res.diverged:
            raise ValueError(f"training with k={k}, block {b} diverged at step {res.diverged_at}; lower lr")
        f = res.W
        rows.append(ObjectiveRow(
            negatives=int(k), block_size=int(b), batch_size=res.batch_size,
            L_un=unsupervised_loss(f, w.eval, 1, method="exact"),
            L_sup_mu=mean_classifier_loss(f, w.eval),
            acc2=mean_classifier_accuracy(f, w.test, way=2),
            acc3=mean_classifier_accuracy(f, w.test, way=3),
            acc10=few_shot_accuracy(f, w.train, w.test, labels_per_class, seed=seed),
        ))
    return rows


# ----------------------------------------------------------------------------------------
# rotation probes


@dataclass
class ProbeTable:
    """Linear-probe test accuracy (mean over seeds) by feature set and number of labels."""

    n_labels: tuple
    accuracy: dict  # name -> array over n_labels
    pretext_accuracy: float
    n_test: int


def rotation_probes(images, labels, result, n_labels=(20, 100, 1000), seeds=(0, 1, 2), C=1.0,
                    one_draw_from=500) -> ProbeTable:
    """Probe raw pixels and each layer of the trained and the initial rotation net.

    Labelled points are stratified draws from the images the pretext net trained on; the test
    points are the held-out images (``result.test_index``), which the net never saw. The
    accuracy is averaged over one labelled draw per seed, except that labelled sets of at
    least ``one_draw_from`` points use only the first seed (they vary little between draws and
    cost the most).
    """
    from sklearn.model_selection import train_test_split

    imgs = np.asarray(images, dtype=float)
    y = np.asarray(labels)
    if len(y) != len(imgs):
        raise ValueError("one label per image")
    pool, test = result.train_index, result.test_index
    if max(n_labels) >= len(pool):
        raise ValueError(f"at most {len(pool) - 1} labels fit in the pretext pool")
    feats = {"raw": imgs.reshape(len(imgs), -1)}
    for tag, net in (("trained", result.net), ("random", result.net0)):
        for name, F in layer_features(net, imgs).items():
            feats[f"{name} ({tag})"] = F
    acc = {name: np.zeros(len(n_labels)) for name in feats}
    for j, n in enumerate(n_labels):
        draws = seeds[:1] if n >= one_draw_from else seeds
        for s in draws:
            tr, _ = train_test_split(pool, train_size=int(n), stratify=y[pool], random_state=int(s))
            rows = np.concatenate([tr, test])
            for name, F in feats.items():
                p = linear_probe(F[rows], y[rows], None, C=C, train_index=np.arange(len(tr)))
                acc[name][j] += p.test_accuracy / len(draws)
    return ProbeTable(tuple(int(n) for n in n_labels), acc, result.test_accuracy, len(test))


# ----------------------------------------------------------------------------------------
# figures


def _fig(ncols=1, width=None, height=3.2, layout="constrained"):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width or 3.6 * ncols, height), layout=layout)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def plot_bound(sweep: BoundSweep):
    """Left: both sides of the Jensen bound against sigma. Right: their gap, log-log, with sigma^2."""
    from helpers.plotting import COLORS

    fig, (a, b) = _fig(2, width=8.0)
    a.plot(sweep.sigmas, sweep.L_un, "o-", color=COLORS["gd"], label=r"$L_{un}(f)$")
    a.plot(sweep.sigmas, sweep.rhs, "s--", color=COLORS["theory"], label=r"$\tau\ell(0)+(1-\tau)L^{\mu}_{sup}(f)$")
    a.set(xlabel=r"noise level $\sigma$", ylabel="loss", title="the two sides of the bound")
    a.legend()
    keep = sweep.sigmas > 0
    s, g = sweep.sigmas[keep], sweep.gap[keep]
    b.loglog(s, g, "o-", color=COLORS["gd"], label="gap")
    ref = g[0] * (s / s[0]) ** 2
    b.loglog(s, ref, ":", color=COLORS["theory"], label=r"$\propto\sigma^2$")
    b.set(xlabel=r"$\sigma$", ylabel="L_un - lower bound", title="the Jensen gap")
    b.legend()
    return fig


def plot_training(curve: TrainingCurve):
    """Left: exact L_un and its Jensen lower bound along training. Right: few-shot accuracy."""
    from helpers.plotting import COLORS

    fig, (a, b) = _fig(2, width=8.0)
    x = np.maximum(curve.steps, 1)
    a.semilogx(x, curve.L_un, "o-", color=COLORS["gd"], label=r"$L_{un}(f)$")
    a.semilogx(x, curve.rhs, "s--", color=COLORS["theory"], label="Jensen lower bound")
    a.semilogx(x, curve.L_sup_mu, "^-", color=COLORS["other"], label=r"$L^{\mu}_{sup}(f)$")
    a.set(xlabel="SGD step (0 plotted at 1)", ylabel="loss", title="losses on the evaluation pool")
    a.legend()
    b.semilogx(x, curve.accuracy, "o-", color=COLORS["gd"], label="learned f")
    b.axhline(curve.accuracy_raw, ls="--", color=COLORS["theory"], label="raw input")
    b.axhline(0.1, ls=":", color="#999999", label="chance")
    b.set(xlabel="SGD step", ylabel="accuracy", ylim=(0, 1),
          title=f"10-way, {curve.labels_per_class} labels per class")
    b.legend()
    return fig


def plot_objectives(rows):
    """Bars: 2-way mean-classifier loss and 10-way few-shot accuracy for each objective."""
    from helpers.plotting import COLORS

    fig, (a, b) = _fig(2, width=8.0, height=3.0)
    names = [r.name for r in rows]
    x = np.arange(len(rows))
    a.bar(x, [r.L_sup_mu for r in rows], color=COLORS["other"])
    a.set(ylabel=r"$L^{\mu}_{sup}$ (2-way)", title="mean-classifier loss (lower is better)")
    b.bar(x, [r.acc10 for r in rows], color=COLORS["gd"])
    b.set(ylabel="accuracy", ylim=(0, 1), title="10-way accuracy, few labels")
    for ax in (a, b):
        ax.set_xticks(x, names, rotation=35, ha="right")
    return fig


def plot_probes(table: ProbeTable):
    """Probe accuracy against the number of labels: each layer trained (solid) vs random init (dashed)."""
    fig, (a,) = _fig(1, width=6.4, height=3.6)
    colors = {"conv1": "#1f77b4", "conv2": "#2ca02c", "fc": "#d62728"}
    n = np.array(table.n_labels)
    a.semilogx(n, table.accuracy["raw"], "ko-", label="raw pixels")
    for layer, c in colors.items():
        a.semilogx(n, table.accuracy[f"{layer} (trained)"], "o-", color=c, label=f"{layer}, rotation-trained")
        a.semilogx(n, table.accuracy[f"{layer} (random)"], "s--", color=c, alpha=0.7, label=f"{layer}, random init")
    a.set(xlabel="labelled digits (all classes)", ylabel="probe test accuracy",
          title="linear probes on each layer")
    a.legend(fontsize=7, ncol=2)
    return fig


# ----------------------------------------------------------------------------------------
# the widget: negatives and labels per class against downstream accuracy

WIDGET_NEGATIVES = (1, 2, 4, 8)
WIDGET_LABELS = (1, 2, 5, 10, 20, 50)


@dataclass
class WidgetFrame:
    negatives: int
    labels_per_class: int
    curves: dict  # negatives -> accuracy over WIDGET_LABELS
    raw: np.ndarray
    random: np.ndarray
    points: np.ndarray  # 2-D projection of the selected representation of the test pool
    classes: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(self.curves[self.negatives][WIDGET_LABELS.index(self.labels_per_class)])


@functools.lru_cache(maxsize=4)
def _widget_tables(steps, sigma=2.0, seed=0):
    w = default_world(sigma, seed)
    curves, proj = {}, {}
    for k in WIDGET_NEGATIVES:
        W = trained(k, 1, sigma, steps, seed).W
        curves[k] = np.array([few_shot_accuracy(W, w.train, w.test, m, seed=seed) for m in WIDGET_LABELS])
        F = features(W, w.test.X).reshape(-1, W.shape[0])
        F = F - F.mean(axis=0)
        _, _, Vt = np.linalg.svd(F, full_matrices=False)  # the top-2 principal directions
        proj[k] = (F @ Vt[:2].T).reshape(w.test.num_classes, -1, 2)[:, :50].reshape(-1, 2)  # 50 per class
    raw = np.array([few_shot_accuracy(None, w.train, w.test, m, seed=seed) for m in WIDGET_LABELS])
    W0 = trained(1, 1, sigma, steps, seed).snapshots[0]
    rand = np.array([few_shot_accuracy(W0, w.train, w.test, m, seed=seed) for m in WIDGET_LABELS])
    return curves, raw, rand, proj, np.repeat(np.arange(w.test.num_classes), 50)


def widget_compute(negatives=1, labels_per_class=5, steps=3000):
    """One frame of the widget (the trainings are cached, so moving a slider only evaluates)."""
    if negatives not in WIDGET_NEGATIVES:
        raise ValueError(f"negatives must be one of {WIDGET_NEGATIVES}")
    if labels_per_class not in WIDGET_LABELS:
        raise ValueError(f"labels_per_class must be one of {WIDGET_LABELS}")
    curves, raw, rand, proj, cls = _widget_tables(int(steps))
    return WidgetFrame(negatives, labels_per_class, curves, raw, rand, proj[negatives], cls)


def plot_widget(frame: WidgetFrame):
    fig, (a, b) = _fig(2, width=8.0, height=3.3, layout=None)  # fixed margins: constrained layout is slow
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.9, wspace=0.15)
    m = np.arange(len(WIDGET_LABELS))  # evenly spaced positions: plain tick labels draw much faster than log ticks
    for k, acc in frame.curves.items():
        sel = k == frame.negatives
        a.plot(m, acc, "o-" if sel else "-", lw=2.4 if sel else 1.0, alpha=1.0 if sel else 0.45,
               label=f"{k} negative{'s' if k > 1 else ''}")
    a.plot(m, frame.raw, "k--", lw=1.2, label="raw input")
    a.plot(m, frame.random, ":", color="#7f7f7f", lw=1.2, label="random f")
    a.plot([WIDGET_LABELS.index(frame.labels_per_class)], [frame.accuracy], "*", ms=14, color="#d62728")
    a.set_xticks(m, [str(v) for v in WIDGET_LABELS])
    a.set(xlabel="labelled points per class", ylabel="10-way accuracy", ylim=(0, 1),
          title=f"accuracy {frame.accuracy:.3f}")
    a.legend(fontsize=7, loc="lower right")
    b.scatter(frame.points[:, 0], frame.points[:, 1], c=frame.classes, cmap="tab10", vmin=0, vmax=9, s=4)
    b.set(title=f"learned f, k={frame.negatives}: test points (top-2 PCs)", xticks=[], yticks=[])
    return fig


@widgets.register("ch06-negatives")
def negatives_widget():
    """Spec: negatives per tuple x labelled points per class -> 10-way few-shot accuracy."""
    steps = repro.pick(ci=3000, paper=20000)
    return widgets.Spec(
        compute=functools.partial(widget_compute, steps=steps),
        plot=plot_widget,
        grid={"negatives": list(WIDGET_NEGATIVES), "labels_per_class": list(WIDGET_LABELS)},
        default={"negatives": 1, "labels_per_class": 5},
        labels={"negatives": "negatives k", "labels_per_class": "labels per class"},
        title="How many negatives, how many labels?",
    )
