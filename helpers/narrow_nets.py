"""Narrow deep networks: one-neuron ResNets versus width-d fully connected nets.

Chapter 10 (Jegelka's talk). The papers:

- Lin & Jegelka (2018), "ResNet with one-neuron hidden layers is a universal approximator":
  blocks ``x <- x + V relu(U x + b)`` with one hidden unit approximate any integrable
  function of ``x`` in ``R^d``; their toy example is the unit ball against an annulus.
- Hanin & Sellke (2017), Lu et al. (2017), Johnson (2019): a fully connected ReLU network
  whose hidden layers have width <= d cannot; its positive region is empty (up to measure
  zero) or unbounded. Width d + 1 suffices.

torch is imported here (training needs autograd); the chapter calls ``repro.setup(use_torch=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = ("resnet1", "fc")


def _check_int(value, name: str, low: int):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


# ----------------------------------------------------------------------------- data
@dataclass
class Dataset:
    """Points ``X`` (n x d) with labels ``y`` in {0, 1} (1 = inside the unit ball)."""

    X: np.ndarray
    y: np.ndarray


def unit_ball_data(n: int, seed: int, d: int = 2, r_in: float = 1.0, r_out: tuple = (2.0, 3.0)) -> Dataset:
    """Lin & Jegelka's toy problem: positives uniform in the unit ball, negatives uniform in the
    shell ``2 <= |x| <= 3``; ``n // 2`` of each (the first half positive).

    Radii are drawn so that points are uniform in volume (``r ~ U^{1/d}`` scaled).
    """
    n = _check_int(n, "n", 2)
    d = _check_int(d, "d", 1)
    lo, hi = r_out
    if not (0 < r_in <= lo < hi):
        raise ValueError(f"need 0 < r_in <= r_out[0] < r_out[1], got r_in={r_in}, r_out={r_out}")
    rng = np.random.default_rng(_check_int(seed, "seed", 0))
    n_pos = n // 2
    n_neg = n - n_pos

    def directions(m):
        z = rng.standard_normal((m, d))
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    r_pos = r_in * rng.uniform(0, 1, n_pos) ** (1 / d)
    r_neg = (lo**d + (hi**d - lo**d) * rng.uniform(0, 1, n_neg)) ** (1 / d)
    X = np.vstack([directions(n_pos) * r_pos[:, None], directions(n_neg) * r_neg[:, None]])
    y = np.concatenate([np.ones(n_pos), np.zeros(n_neg)])
    return Dataset(X=X, y=y)


# ----------------------------------------------------------------------------- models
def _init(kind: str, depth: int, width: int, d: int, seed: int):
    """Parameters of one network, initialised like ``torch.nn.Linear`` (uniform, 1/sqrt(fan_in))."""
    import torch

    gen = torch.Generator().manual_seed(seed)

    def unif(shape, fan_in):
        return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) / np.sqrt(fan_in)

    if kind == "resnet1":
        # block l: x <- x + V_l relu(U_l x + b_l), U_l: width x d, V_l: d x width
        p = {"U": unif((depth, width, d), d), "b": unif((depth, width), d), "V": unif((depth, d, width), width)}
        p["w"], p["c"] = unif((d,), d), unif((), d)
    else:
        p = {}
        fan = d
        for k in range(depth):
            p[f"W{k}"], p[f"b{k}"] = unif((width, fan), fan), unif((width,), fan)
            fan = width
        p["w"], p["c"] = unif((fan,), fan), unif((), fan)
    return p


def _forward(kind: str, depth: int, p: dict, X):
    """Logits of a stack of S networks: parameters carry a leading model axis, X is (S, n, d)."""
    import torch

    x = X
    if kind == "resnet1":
        for k in range(depth):
            h = torch.relu(x @ p["U"][:, k].transpose(-1, -2) + p["b"][:, k, None, :])
            x = x + h @ p["V"][:, k].transpose(-1, -2)
    else:
        for k in range(depth):
            x = torch.relu(x @ p[f"W{k}"].transpose(-1, -2) + p[f"b{k}"][:, None, :])
    return (x @ p["w"][:, :, None]).squeeze(-1) + p["c"][:, None]


def _module(kind: str, depth: int, width: int, params: dict):
    """A torch module computing the logits of one trained network (``params`` without model axis)."""
    import torch

    class NarrowNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.kind, self.depth, self.width = kind, depth, width
            self.p = torch.nn.ParameterDict({k: torch.nn.Parameter(v.detach().clone()[None]) for k, v in params.items()})

        def forward(self, x):
            squeeze = x.dim() == 2
            x = x[None] if squeeze else x
            out = _forward(self.kind, self.depth, dict(self.p), x)
            return out[0] if squeeze else out

    return NarrowNet()


@dataclass
class TrainResult:
    """A trained classifier and its record. ``model`` is a torch module returning logits."""

    kind: str
    depth: int
    width: int
    model: object
    loss: np.ndarray
    train_acc: float
    test_acc: float | None
    n_params: int
    diverged: bool = False
    diverged_at: int | None = None
    meta: dict = field(default_factory=dict)

    def predict(self, X) -> np.ndarray:
        """Logits at the rows of ``X`` (numpy in, numpy out)."""
        return logits(self.model, X)


def logits(model, X) -> np.ndarray:
    """Evaluate a torch classifier (or a TrainResult, or a numpy callable) at the rows of ``X``."""
    if isinstance(model, TrainResult):
        model = model.model
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be (n, d), got shape {X.shape}")
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        with torch.no_grad():
            return model(torch.as_tensor(X, dtype=torch.float64)).double().numpy().reshape(-1)
    if callable(model):
        return np.asarray(model(X), dtype=float).reshape(-1)
    raise ValueError("model must be a TrainResult, a torch.nn.Module or a callable X -> logits")


def accuracy(model, data: Dataset) -> float:
    """Fraction of points whose logit sign matches the label (logit > 0 means class 1)."""
    return float(np.mean((logits(model, data.X) > 0) == (data.y > 0.5)))


def _check_data(data, name="data"):
    X = np.asarray(getattr(data, "X", None), dtype=float)
    y = np.asarray(getattr(data, "y", None), dtype=float)
    if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] == 0:
        raise ValueError(f"{name}.X must be (n, d) with n >= 1 and {name}.y (n,), got {X.shape} and {y.shape}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"{name}.y must contain only 0 and 1")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name}.X contains non-finite values")
    return X, y


def train_classifiers(kind: str, depth: int, width: int, data: Dataset, steps: int, seeds,
                      lr: float = 0.01, test: Dataset | None = None, device: str | None = None) -> list[TrainResult]:
    """:func:`train_classifier` for several seeds at once (stacked, one Adam run; the same
    numbers as separate runs up to rounding, because Adam updates every coordinate on its own
    and each model's loss involves only its own parameters).

    ``device``: the torch device to train on (``"cpu"`` or ``"cuda"``); ``None`` follows
    ``DLT_DEVICE`` (a GPU when torch sees one, see :func:`helpers.repro.device`). The
    initialisation is drawn on the CPU, so a seed gives the same starting weights everywhere;
    the returned models live on the CPU."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    depth = _check_int(depth, "depth", 1)
    width = _check_int(width, "width", 1)
    steps = _check_int(steps, "steps", 0)
    seeds = [_check_int(s, "seed", 0) for s in seeds]
    if not seeds:
        raise ValueError("pass at least one seed")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr}")
    X, y = _check_data(data)
    if test is not None:
        _check_data(test, "test")
    import torch

    from helpers import repro

    device = repro.torch_device(device)
    inits = [_init(kind, depth, width, X.shape[1], s) for s in seeds]
    params = {k: torch.stack([p[k] for p in inits]).to(device).requires_grad_() for k in inits[0]}
    S = len(seeds)
    Xt = torch.as_tensor(X, device=device).expand(S, *X.shape)
    yt = torch.as_tensor(y, device=device).expand(S, -1)
    opt = torch.optim.Adam(list(params.values()), lr=lr, foreach=True)
    hist = np.full((S, steps), np.nan)
    diverged_at = [None] * S
    for t in range(steps):
        opt.zero_grad()
        per_model = torch.nn.functional.binary_cross_entropy_with_logits(
            _forward(kind, depth, params, Xt), yt, reduction="none").mean(dim=1)
        hist[:, t] = per_model.detach().cpu().numpy()
        bad = ~np.isfinite(hist[:, t])
        if bad.any():
            for s in np.flatnonzero(bad):
                diverged_at[s] = t if diverged_at[s] is None else diverged_at[s]
            break
        per_model.sum().backward()
        opt.step()
    out = []
    for s in range(S):
        model = _module(kind, depth, width, {k: v[s].detach().cpu() for k, v in params.items()})
        n_params = sum(int(np.prod(v.shape[1:])) for v in params.values())
        div = diverged_at[s] is not None
        tr_acc = float("nan") if div else accuracy(model, Dataset(X, y))
        te_acc = None if test is None else (float("nan") if div else accuracy(model, test))
        loss = hist[s][np.isfinite(hist[s])] if div else hist[s]
        out.append(TrainResult(kind, depth, width, model, loss, tr_acc, te_acc, n_params,
                               diverged=div, diverged_at=diverged_at[s], meta={"seed": seeds[s], "lr": lr}))
    return out


def train_classifier(kind: str, depth: int, width: int, data: Dataset, steps: int, seed: int,
                     lr: float = 0.01, test: Dataset | None = None, device: str | None = None) -> TrainResult:
    """Train a narrow network on ``data`` with full-batch Adam on the logistic loss (float64).

    ``kind="resnet1"``: ``depth`` residual blocks ``x <- x + V relu(U x + b)`` with ``width``
    hidden units each (1 in Lin & Jegelka 2018), then a linear read-out; ``kind="fc"``:
    ``depth`` fully connected ReLU layers of ``width`` units, then a linear read-out.
    Initialisation as ``torch.nn.Linear``, seeded by ``seed``. A non-finite loss stops
    training and is reported in ``diverged`` / ``diverged_at``.
    """
    return train_classifiers(kind, depth, width, data, steps, [seed], lr=lr, test=test, device=device)[0]


# ----------------------------------------------------------------------------- the ray test
@dataclass
class RayTest:
    """Where each ray from the origin leaves the positive region {logit > 0}.

    ``exit_radius[i]`` is the first radius at which the ray at ``angles[i]`` stops being
    positive (0 if the origin itself is not positive; ``inf`` if it never stops up to
    ``r_max``). ``far_positive[i]``: the logit is positive at radius ``r_far`` (far beyond the
    data) in that direction. ``unbounded`` is True when some ray stays positive from the
    origin all the way to ``r_far``: the positive region containing the origin reaches
    (numerically) infinity.
    """

    angles: np.ndarray
    exit_radius: np.ndarray
    far_positive: np.ndarray
    escapes: np.ndarray
    r_max: float
    r_far: float

    @property
    def unbounded(self) -> bool:
        return bool(self.escapes.any())

    @property
    def escape_fraction(self) -> float:
        return float(self.escapes.mean())

    @property
    def max_finite_exit(self) -> float:
        finite = self.exit_radius[np.isfinite(self.exit_radius)]
        return float(finite.max()) if finite.size else float("nan")


def decision_region_unbounded(model, n_rays: int = 360, r_max: float = 50.0, r_far: float = 1e6,
                              n_scan: int = 400, tol: float = 1e-7) -> RayTest:
    """Ray test for an unbounded positive region of a 2-D classifier (logit > 0 is positive).

    Along each of ``n_rays`` rays from the origin, the logit is scanned at ``n_scan`` radii
    (denser near the data) up to ``r_max``; the first bracket where it turns non-positive is
    refined by bisection to ``tol``. A ray that stays positive up to ``r_max`` and is still
    positive at ``r_far`` counts as an escape. For a ReLU network the logit is affine along a
    ray beyond its last kink, so a positive value far out means the ray is positive out to
    infinity unless a kink lies beyond ``r_far``.
    """
    n_rays = _check_int(n_rays, "n_rays", 1)
    n_scan = _check_int(n_scan, "n_scan", 2)
    if not (np.isfinite(r_max) and r_max > 0 and np.isfinite(r_far) and r_far >= r_max):
        raise ValueError(f"need 0 < r_max <= r_far < inf, got r_max={r_max}, r_far={r_far}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    angles = np.linspace(0, 2 * np.pi, n_rays, endpoint=False)
    U = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    # radii: linear up to 4 (the data), then geometric to r_max
    near = np.linspace(0, min(4.0, r_max), n_scan // 2)
    far = np.geomspace(min(4.0, r_max), r_max, n_scan - n_scan // 2 + 1)[1:]
    radii = np.concatenate([near, far])
    pts = (U[:, None, :] * radii[None, :, None]).reshape(-1, 2)
    F = logits(model, pts).reshape(n_rays, radii.size)
    exit_r = np.full(n_rays, np.inf)
    pos = F > 0
    exit_r[~pos[:, 0]] = 0.0
    # first non-positive radius along each ray that starts positive
    first_bad = np.argmax(~pos, axis=1)
    todo = np.flatnonzero(pos[:, 0] & (~pos).any(axis=1))
    if todo.size:
        lo, hi = radii[first_bad[todo] - 1].copy(), radii[first_bad[todo]].copy()
        # bisection on all bracketed rays at once: keep lo positive, hi non-positive
        n_iter = int(np.ceil(np.log2(max(float((hi - lo).max()), tol) / tol)))
        for _ in range(n_iter):
            mid = 0.5 * (lo + hi)
            good = logits(model, U[todo] * mid[:, None]) > 0
            lo = np.where(good, mid, lo)
            hi = np.where(good, hi, mid)
        exit_r[todo] = 0.5 * (lo + hi)
    far_pos = logits(model, U * r_far) > 0
    escapes = np.isinf(exit_r) & far_pos
    return RayTest(angles, exit_r, far_pos, escapes, float(r_max), float(r_far))


# ----------------------------------------------------------------------------- pictures
@dataclass
class RegionGrid:
    """Logits of a classifier on a square grid, for drawing its decision region."""

    xs: np.ndarray
    values: np.ndarray
    title: str


def region_grid(model, extent: float = 4.0, n: int = 161, title: str = "") -> RegionGrid:
    """Evaluate the logit on an ``n x n`` grid over ``[-extent, extent]^2`` (for plotting only)."""
    n = _check_int(n, "n", 2)
    xs = np.linspace(-extent, extent, n)
    XX, YY = np.meshgrid(xs, xs)
    vals = logits(model, np.column_stack([XX.ravel(), YY.ravel()])).reshape(n, n)
    return RegionGrid(xs, vals, title)


def plot_regions(grids: list[RegionGrid], data: Dataset | None = None, rays: list[RayTest | None] | None = None):
    """Decision regions side by side: positive region shaded, data, and escaping rays in red."""
    from helpers import plotting

    fig, axes = plotting.subplots(1, len(grids), width=3.3 * len(grids), height=3.4, squeeze=False)
    for k, (ax, g) in enumerate(zip(axes[0], grids)):
        ext = (g.xs[0], g.xs[-1], g.xs[0], g.xs[-1])
        ax.imshow(g.values > 0, origin="lower", extent=ext, cmap="Blues", vmin=0, vmax=1.6, alpha=0.9)
        ax.contour(g.xs, g.xs, g.values, levels=[0], colors="k", linewidths=1)
        if data is not None:
            m = data.y > 0.5
            ax.scatter(*data.X[m].T, s=3, color="#1f77b4")
            ax.scatter(*data.X[~m].T, s=3, color="#ff7f0e")
        t = np.linspace(0, 2 * np.pi, 200)
        for r in (1, 2, 3):
            ax.plot(r * np.cos(t), r * np.sin(t), color="#555555", lw=0.6, ls=":")
        if rays is not None and rays[k] is not None:
            R = rays[k]
            for a in R.angles[R.escapes][:: max(1, int(R.escapes.sum()) // 12)]:
                ax.plot([0, 10 * np.cos(a)], [0, 10 * np.sin(a)], color="#d62728", lw=0.8)
        ax.set_xlim(ext[:2])
        ax.set_ylim(ext[2:])
        ax.set_aspect("equal")
        ax.set_title(g.title, fontsize=9)
        ax.grid(False)
    return fig
