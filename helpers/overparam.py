"""Overparametrization: lazy training and the NTK, teacher-student, margins, depth and rank.

Experiments of chapter 9 (Jason Lee's talk):

- :func:`ntk_gram`, :func:`train_wide_net`, :func:`lazy_scan`: gradient descent on a wide
  two-layer ReLU net stays close to its kernel linearisation (Du, Zhai, Poczos & Singh 2019;
  Jacot, Gabriel & Hongler 2018); the distance and the weight movement shrink like m^(-1/2).
- :func:`teacher_student`: a 50-unit ReLU teacher fitted by students of several widths
  (the experiment of the talk; cf. Livni, Shalev-Shwartz & Shamir 2014, Safran & Shamir 2018).
- :func:`regularized_margin_path`, :func:`max_margin_reference`: weakly regularised logistic
  loss on a homogeneous net approaches the maximum normalised margin (Wei, Lee, Liu & Ma 2019).
- :func:`nuclear_norm_completion`, :func:`deep_factorization_completion`: depth of a linear
  factorisation lowers the rank GD finds in matrix completion (Arora, Cohen, Hu & Luo 2019).

torch is imported only inside :func:`teacher_student`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from helpers import repro, widgets

# ============================================================================ lazy regime / NTK


def _check_matrix(X, name="X"):
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array (n samples x d features), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return X


def _check_unit_rows(X):
    X = _check_matrix(X)
    norms = np.linalg.norm(X, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-6):
        raise ValueError("the rows of X must have unit norm; divide each row by its norm first")
    return X


def ntk_gram(X):
    """Infinite-width Gram matrix ``H_inf`` of a two-layer ReLU net (Du et al. 2019, eq. 3).

    ``H_ij = E_w[x_i.x_j 1{w.x_i >= 0} 1{w.x_j >= 0}] = x_i.x_j (pi - arccos(x_i.x_j)) / (2 pi)``
    for ``w ~ N(0, I)`` and unit-norm rows ``x_i`` of ``X``.
    """
    X = _check_unit_rows(X)
    G = np.clip(X @ X.T, -1.0, 1.0)  # rounding can push |x_i.x_j| a hair above 1
    return G * (np.pi - np.arccos(G)) / (2 * np.pi)


def kernel_residuals(H, r0, lr, steps):
    """The kernel prediction ``r_t = (I - lr H)^t r_0`` for ``t = 0..steps`` (rows)."""
    H = _check_matrix(H, "H")
    r0 = np.asarray(r0, dtype=float)
    if H.shape[0] != H.shape[1] or r0.shape != (H.shape[0],):
        raise ValueError(f"H must be square n x n and r0 of length n; got {H.shape} and {r0.shape}")
    _check_steps(lr, steps)
    A = np.eye(len(r0)) - lr * H
    out = np.empty((steps + 1, len(r0)))
    out[0] = r0
    for t in range(steps):
        out[t + 1] = A @ out[t]
    return out


def _check_steps(lr, steps):
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")


@dataclass
class WideNetRun:
    """One gradient-descent run of ``f(x) = m^(-1/2) sum_r a_r relu(w_r.x)`` (first layer trained).

    ``residuals[t] = y - f_t(X)``; ``kernel[t] = (I - lr H_inf)^t residuals[0]``;
    ``movement[r] = ||w_r(T) - w_r(0)||``.
    """

    width: int
    lr: float
    residuals: np.ndarray
    kernel: np.ndarray
    movement: np.ndarray
    relative_change: float  # ||W(T) - W(0)||_F / ||W(0)||_F
    pattern_changes: float  # fraction of (i, r) whose activation 1{w_r.x_i > 0} flipped
    diverged: bool = False
    diverged_at: int | None = None

    @property
    def kernel_distance(self) -> float:
        """max_t ||r_t - (I - lr H_inf)^t r_0||."""
        return float(np.max(np.linalg.norm(self.residuals - self.kernel, axis=1)))

    @property
    def max_movement(self) -> float:
        return float(self.movement.max())


def train_wide_net(X, y, width, lr, steps, seed):
    """Gradient descent on ``L(W) = 1/2 sum_i (f(x_i) - y_i)^2`` in the setting of Du et al. (2019).

    ``f(x) = m^(-1/2) sum_r a_r relu(w_r.x)``, ``w_r(0) ~ N(0, I)``, ``a_r`` uniform in {-1, +1}
    and fixed; ``X`` has unit-norm rows. Returns a :class:`WideNetRun` with the residual
    trajectory, its kernel prediction with ``H_inf`` and the weight movement. A non-finite
    loss stops the run and sets ``diverged``.
    """
    X = _check_unit_rows(X)
    y = np.asarray(y, dtype=float)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have one entry per row of X ({X.shape[0]}), got shape {y.shape}")
    if int(width) != width or width < 1:
        raise ValueError(f"width must be a positive integer, got {width}")
    _check_steps(lr, steps)
    width, steps = int(width), int(steps)
    rng = repro.rng(seed)
    n, d = X.shape
    W0 = rng.standard_normal((width, d))
    a = rng.choice([-1.0, 1.0], size=width)
    W = W0.copy()
    scale = 1.0 / np.sqrt(width)
    R = np.full((steps + 1, n), np.nan)
    diverged_at = None
    pattern0 = None
    for t in range(steps + 1):
        Z = X @ W.T
        active = Z > 0
        if pattern0 is None:
            pattern0 = active
        r = y - (np.where(active, Z, 0.0) @ a) * scale
        if not np.all(np.isfinite(r)) or np.linalg.norm(r) > 1e6:
            diverged_at = t
            break
        R[t] = r
        if t == steps:
            break
        # dL/dw_r = -m^(-1/2) a_r sum_i r_i 1{w_r.x_i > 0} x_i
        W += lr * scale * ((r[:, None] * active) * a).T @ X
    kernel = kernel_residuals(ntk_gram(X), R[0], lr, steps)
    return WideNetRun(
        width=width,
        lr=float(lr),
        residuals=R,
        kernel=kernel,
        movement=np.linalg.norm(W - W0, axis=1),
        relative_change=float(np.linalg.norm(W - W0) / np.linalg.norm(W0)),
        pattern_changes=float(np.mean((X @ W.T > 0) != pattern0)),
        diverged=diverged_at is not None,
        diverged_at=diverged_at,
    )


def unit_sphere_data(n, d, seed):
    """``n`` points uniform on the unit sphere of R^d and labels uniform in {-1, +1}."""
    if n < 1 or d < 1:
        raise ValueError(f"n and d must be positive, got n={n}, d={d}")
    rng = repro.rng(seed)
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, rng.choice([-1.0, 1.0], size=n)


def loglog_slope(x, y):
    """Least-squares slope of log y against log x (the exponent of a power law)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.size < 2 or np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("loglog_slope needs two or more positive (x, y) pairs of equal length")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


@dataclass
class LazyScan:
    """Kernel distance and weight movement over widths (rows) and seeds (columns)."""

    widths: np.ndarray
    kernel_distance: np.ndarray
    max_movement: np.ndarray
    relative_change: np.ndarray
    pattern_changes: np.ndarray
    r0_norm: float

    @property
    def distance_slope(self) -> float:
        return loglog_slope(self.widths, self.kernel_distance.mean(1))

    @property
    def movement_slope(self) -> float:
        return loglog_slope(self.widths, self.max_movement.mean(1))

    @property
    def scaled_movement(self) -> np.ndarray:
        """``max_r ||w_r(T) - w_r(0)|| sqrt(m)``, averaged over seeds."""
        return self.max_movement.mean(1) * np.sqrt(self.widths)


def lazy_scan(X, y, widths, lr, steps, seeds):
    """Run :func:`train_wide_net` for every width and seed; collect the lazy-regime numbers."""
    widths = np.asarray(list(widths), dtype=int)
    seeds = list(seeds)
    if widths.size < 2 or not seeds:
        raise ValueError("lazy_scan needs at least two widths and one seed")
    shape = (len(widths), len(seeds))
    dist, move, rel, pat = (np.empty(shape) for _ in range(4))
    r0 = []
    for i, m in enumerate(widths):
        for j, s in enumerate(seeds):
            run = train_wide_net(X, y, int(m), lr, steps, s)
            if run.diverged:
                dist[i, j] = move[i, j] = rel[i, j] = pat[i, j] = np.nan
                continue
            dist[i, j], move[i, j] = run.kernel_distance, run.max_movement
            rel[i, j], pat[i, j] = run.relative_change, run.pattern_changes
            r0.append(np.linalg.norm(run.residuals[0]))
    return LazyScan(widths, dist, move, rel, pat, float(np.mean(r0)) if r0 else np.nan)


def plot_lazy_scan(scan: LazyScan):
    """Two log-log panels: distance to the kernel prediction, and weight movement, vs width."""
    from helpers import plotting

    fig, (ax1, ax2) = plotting.subplots(1, 2, width=9.0, height=3.2)
    m = scan.widths
    for ax, vals, slope, title in [
        (ax1, scan.kernel_distance, scan.distance_slope, r"$\max_t \|r_t - (I-\eta H^\infty)^t r_0\|$"),
        (ax2, scan.max_movement, scan.movement_slope, r"$\max_r \|w_r(T) - w_r(0)\|$"),
    ]:
        mean = vals.mean(1)
        ax.loglog(m, vals, ".", color="#999999", ms=4)
        ax.loglog(m, mean, "o-", color=plotting.COLORS["gd"], label=f"measured (slope {slope:.2f})")
        ax.loglog(m, mean[0] * np.sqrt(m[0] / m), "--", color=plotting.COLORS["theory"], label=r"$\propto m^{-1/2}$")
        ax.set_xlabel("width m")
        ax.set_title(title)
        ax.legend()
    return fig


def plot_wide_run(run: WideNetRun):
    """Residual norm vs kernel prediction (left) and histogram of per-neuron movement (right)."""
    from helpers import plotting

    # fixed margins instead of constrained layout: the widget redraws this on every move
    fig, (ax1, ax2) = plotting.subplots(1, 2, width=9.0, height=3.2, layout=None)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.17, top=0.9, wspace=0.25)
    if run.diverged:
        plotting.message_axes(ax1, f"diverged at step {run.diverged_at}")
        plotting.message_axes(ax2, "no movement to show")
        return fig
    t = np.arange(run.residuals.shape[0])
    ax1.semilogy(t, np.linalg.norm(run.residuals, axis=1), color=plotting.COLORS["gd"], label="network (GD)")
    ax1.semilogy(t, np.linalg.norm(run.kernel, axis=1), "--", color=plotting.COLORS["theory"], label="kernel $H^\\infty$")
    ax1.set_xlabel("step t")
    ax1.set_ylabel(r"$\|y - f_t(X)\|$")
    ax1.set_title(f"m = {run.width}: distance {run.kernel_distance:.3f}")
    ax1.legend()
    ax2.hist(run.movement, bins=30, range=(0, 2.5), color=plotting.COLORS["gd"])
    ax2.set_xlim(0, 2.5)
    ax2.set_xlabel(r"$\|w_r(T) - w_r(0)\|$ (initial $\|w_r\| \approx \sqrt{d}$)")
    ax2.set_ylabel("neurons")
    ax2.set_title(f"max {run.max_movement:.3f}; flipped {100 * run.pattern_changes:.2f}% of activations")
    return fig


WIDGET_WIDTHS = (16, 32, 64, 128, 256, 512, 1024, 2048)


@widgets.register("ch09-lazy")
def lazy_widget_spec(n: int = 12, d: int = 6, steps: int = 60, seed: int = 0):
    """Width slider: the residual trajectory hugs the kernel prediction and neurons stop moving."""
    X, y = unit_sphere_data(n, d, seed)
    lr = 1.0 / np.linalg.eigvalsh(ntk_gram(X))[-1]

    def compute(width):
        return train_wide_net(X, y, width, lr, steps, seed)

    return widgets.Spec(compute, plot_wide_run, {"width": list(WIDGET_WIDTHS)}, title="Lazy training: width m",
                        default={"width": 64}, labels={"width": "width m"})


# ============================================================================ teacher-student


@dataclass
class TeacherStudent:
    """Final errors of students (one per seed) fitted to a ReLU teacher.

    Errors are mean squared errors divided by the variance of the teacher's outputs (so 1 is
    the error of predicting the mean).
    """

    teacher_width: int
    student_width: int
    seeds: list
    train_mse: np.ndarray
    test_mse: np.ndarray
    curve_steps: np.ndarray
    train_curve: np.ndarray  # (seeds, len(curve_steps))
    diverged: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


def teacher_data(teacher_width, d, n, n_test=2000, data_seed=0):
    """Gaussian inputs labelled by ``f*(x) = sum_j relu(w*_j.x)`` with unit-norm random ``w*_j``."""
    rng = repro.rng(data_seed)
    Wt = rng.standard_normal((teacher_width, d))
    Wt /= np.linalg.norm(Wt, axis=1, keepdims=True)
    X, Xte = rng.standard_normal((n, d)), rng.standard_normal((n_test, d))
    f = lambda Z: np.maximum(Z @ Wt.T, 0.0).sum(1)  # noqa: E731
    return X, f(X), Xte, f(Xte)


def teacher_student(teacher_width, student_width, d, n, steps, seeds, lr=0.02, n_test=2000, data_seed=0,
                    record_every=None, device=None):
    """Fit ``g(x) = sum_r v_r relu(w_r.x)`` to a ``teacher_width``-unit teacher, one run per seed.

    Both layers are trained with full-batch Adam (learning rate ``lr``) on the squared loss;
    all seeds are trained at once as a batch. ``seeds`` sets the students' initialisations
    (``w_r ~ N(0, I/d)``, ``v_r ~ N(0, 1/m)``); ``data_seed`` the teacher and the data.
    Returns a :class:`TeacherStudent` with each seed's final normalised train and test MSE.
    ``device``: a torch device name; ``None`` follows ``DLT_DEVICE`` (a GPU when torch sees one).
    A seed's run does not depend on the other seeds of the batch (same numbers as alone).
    """
    import torch

    for name, v in [("teacher_width", teacher_width), ("student_width", student_width), ("d", d), ("n", n),
                    ("steps", steps), ("n_test", n_test)]:
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be positive, got {lr}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("pass at least one seed")
    device = repro.torch_device(device)
    X, y, Xte, yte = teacher_data(teacher_width, d, n, n_test, data_seed)
    m = int(student_width)
    inits = []
    for s in seeds:
        rng = repro.rng(s)
        inits.append((rng.standard_normal((m, d)) / np.sqrt(d), rng.standard_normal(m) / np.sqrt(m)))
    W = np.stack([w for w, _ in inits])
    v = np.stack([a for _, a in inits])
    dt = torch.float32  # float32 halves the time; the errors compared are far above its precision
    W = torch.tensor(W, dtype=dt, device=device, requires_grad=True)
    v = torch.tensor(v, dtype=dt, device=device, requires_grad=True)
    Xt, yt = torch.tensor(X, dtype=dt, device=device), torch.tensor(y, dtype=dt, device=device)
    var = float(np.var(y))

    def predict(Xb):
        return (torch.relu(torch.matmul(Xb, W.transpose(1, 2))) @ v.unsqueeze(-1)).squeeze(-1)

    opt = torch.optim.Adam([W, v], lr=lr)
    every = record_every or max(1, steps // 50)
    rec_steps, curve = [], []
    for t in range(int(steps)):
        opt.zero_grad()
        per_seed = ((predict(Xt) - yt) ** 2).mean(1)
        if t % every == 0:
            rec_steps.append(t)
            curve.append(per_seed.detach() / var)  # stays on the device: no sync per record
        per_seed.sum().backward()  # seeds are independent: the sum's gradient is each seed's own
        opt.step()
    with torch.no_grad():
        train = ((predict(Xt) - yt) ** 2).mean(1).cpu().numpy() / var
        Xte_t, yte_t = torch.tensor(Xte, dtype=dt, device=device), torch.tensor(yte, dtype=dt, device=device)
        test = ((predict(Xte_t) - yte_t) ** 2).mean(1).cpu().numpy()
        test = test / float(np.var(yte))
    diverged = ~np.isfinite(train)
    return TeacherStudent(int(teacher_width), m, seeds, train.astype(float), test.astype(float),
                          np.array(rec_steps), torch.stack(curve).cpu().numpy().T.astype(float), diverged)


def plot_teacher_student(results):
    """Training curves (left) and final train/test error per seed (right) for each student width."""
    from helpers import plotting

    fig, (ax1, ax2) = plotting.subplots(1, 2, width=9.0, height=3.4)
    for k, res in enumerate(results):
        color = plotting.STYLE["axes.prop_cycle"].by_key()["color"][k]
        for j in range(len(res.seeds)):
            ax1.semilogy(res.curve_steps, res.train_curve[j], color=color, alpha=0.7,
                         label=f"{res.student_width} units" if j == 0 else None)
        x = np.full(len(res.seeds), k)
        ax2.semilogy(x - 0.1, res.train_mse, "o", color=color)
        ax2.semilogy(x + 0.1, res.test_mse, "s", color=color, mfc="none")
    ax1.set_xlabel("Adam step")
    ax1.set_ylabel("train MSE / Var(y)")
    ax1.set_title(f"teacher: {results[0].teacher_width} ReLU units")
    ax1.legend()
    ax2.set_xticks(range(len(results)), [f"{r.student_width}" for r in results])
    ax2.set_xlabel("student width (o train, □ test)")
    ax2.set_title("final error, one marker per seed")
    return fig


# ============================================================================ margins


def _one_thread():
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)
    except ImportError:  # threadpoolctl ships with scikit-learn
        import contextlib

        return contextlib.nullcontext()


def normalized_margin(W, a, X, y):
    """``min_i y_i f(x_i) / ||theta||^2`` for the 2-homogeneous ``f(x) = sum_r a_r relu(w_r.x)``."""
    W, X = _check_matrix(W, "W"), _check_matrix(X)
    a, y = np.asarray(a, float), np.asarray(y, float)
    if W.shape[1] != X.shape[1] or a.shape != (W.shape[0],) or y.shape != (X.shape[0],):
        raise ValueError("shapes: W (m, d), a (m,), X (n, d), y (n,)")
    sq = float(np.sum(W**2) + np.sum(a**2))
    if sq == 0:
        raise ValueError("theta = 0 has no normalised margin")
    return float(np.min(y * (np.maximum(X @ W.T, 0.0) @ a)) / sq)


def max_margin_reference(X, y, n_features=4000, seed=0):
    """The maximum normalised margin ``gamma*`` of 2-homogeneous two-layer ReLU nets, via an LP.

    By AM-GM, ``||theta||^2 >= 2 sum_r |a_r| ||w_r||``, with equality for balanced neurons, so
    ``gamma* = gamma_1 / 2`` where ``gamma_1`` is the margin of the l1-SVM over the features
    ``relu(u.x)``, ``||u|| = 1`` (Wei, Lee, Liu & Ma 2019). Here ``u`` ranges over
    ``n_features`` random unit vectors, so the value is a lower bound that tightens as
    ``n_features`` grows. Solved with scipy's HiGHS ``linprog``.
    """
    from scipy.optimize import linprog

    X = _check_matrix(X)
    y = np.asarray(y, float)
    if y.shape != (X.shape[0],) or not np.all(np.isin(y, (-1.0, 1.0))):
        raise ValueError("y must hold one label in {-1, +1} per row of X")
    if n_features < 1:
        raise ValueError("n_features must be positive")
    U = repro.rng(seed).standard_normal((int(n_features), X.shape[1]))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    Phi = np.maximum(X @ U.T, 0.0) * y[:, None]
    K, n = U.shape[0], X.shape[0]
    # variables c+ >= 0, c- >= 0 (K each) and gamma; maximise gamma
    cost = np.r_[np.zeros(2 * K), -1.0]
    A = np.vstack([np.hstack([-Phi, Phi, np.ones((n, 1))]), np.r_[np.ones(2 * K), 0.0][None]])
    b = np.r_[np.zeros(n), 1.0]
    res = linprog(cost, A_ub=A, b_ub=b, bounds=[(0, None)] * (2 * K) + [(None, None)], method="highs")
    if res.status != 0:
        raise RuntimeError(f"linprog failed: {res.message}")
    return float(-res.fun) / 2.0


def circle_data(n, seed, radius=0.65):
    """``n`` points uniform in [-1, 1]^2, label +1 inside the circle of ``radius``, with a bias
    coordinate appended (so a bias-free ReLU net on (x, 1) stays homogeneous in its weights)."""
    rng = repro.rng(seed)
    P = rng.uniform(-1, 1, (n, 2))
    y = np.where(np.linalg.norm(P, axis=1) < radius, 1.0, -1.0)
    return np.hstack([P, np.ones((n, 1))]), y


@dataclass
class MarginPath:
    """Regularised solutions along decreasing ``lambdas``: margins, norms, iterations used."""

    lambdas: np.ndarray
    margins: np.ndarray
    sq_norms: np.ndarray
    iterations: np.ndarray
    train_errors: np.ndarray
    W: list
    a: list


def _reg_logistic(theta, X, y, m, lam):
    n, d = X.shape
    W, a = theta[: m * d].reshape(m, d), theta[m * d:]
    Z = X @ W.T
    A = np.maximum(Z, 0.0)
    z = -y * (A @ a)
    loss = np.sum(np.logaddexp(0.0, z))
    s = -y * np.exp(-np.logaddexp(0.0, -z))  # d loss / d f_i = -y_i sigmoid(z_i), without overflow
    gW = ((s[:, None] * (Z > 0)) * a).T @ X
    ga = A.T @ s
    return loss + lam * theta @ theta, np.r_[gW.ravel(), ga] + 2 * lam * theta


def regularized_margin_path(X, y, width, lambdas, seed=0, maxiter=1500):
    """Minimise ``sum_i log(1 + exp(-y_i f(x_i))) + lam ||theta||^2`` for each ``lam`` (L-BFGS).

    ``f(x) = sum_r a_r relu(w_r.x)`` (2-homogeneous). ``lambdas`` are solved in decreasing
    order, each warm-started from the previous solution (a continuation path); Wei et al.
    (2019) show the normalised margin of the global minimiser tends to ``gamma*`` as
    ``lam -> 0``.
    """
    from scipy.optimize import minimize

    X = _check_matrix(X)
    y = np.asarray(y, float)
    if y.shape != (X.shape[0],):
        raise ValueError("y needs one label per row of X")
    lambdas = np.asarray(list(lambdas), float)
    if lambdas.size == 0 or np.any(lambdas <= 0) or np.any(np.diff(lambdas) >= 0):
        raise ValueError("lambdas must be positive and strictly decreasing")
    if int(width) != width or width < 1:
        raise ValueError(f"width must be a positive integer, got {width}")
    m, d = int(width), X.shape[1]
    theta = 0.5 * repro.rng(seed).standard_normal(m * d + m)
    out = {k: [] for k in ("margins", "sq_norms", "iterations", "train_errors", "W", "a")}
    for lam in lambdas:
        # scipy's own BLAS is loaded after repro.setup pinned the threads; threads only slow
        # these tiny products down (10x here on 2 cores), so pin them again
        with _one_thread():
            res = minimize(_reg_logistic, theta, args=(X, y, m, lam), jac=True, method="L-BFGS-B",
                           options=dict(maxiter=maxiter, gtol=1e-12, ftol=0.0))
        theta = res.x
        W, a = theta[: m * d].reshape(m, d), theta[m * d:]
        out["margins"].append(normalized_margin(W, a, X, y))
        out["sq_norms"].append(float(theta @ theta))
        out["iterations"].append(res.nit)
        out["train_errors"].append(float(np.mean(y * (np.maximum(X @ W.T, 0) @ a) <= 0)))
        out["W"].append(W.copy())
        out["a"].append(a.copy())
    return MarginPath(lambdas, *(np.array(out[k]) for k in ("margins", "sq_norms", "iterations", "train_errors")),
                      out["W"], out["a"])


def plot_margin_path(path: MarginPath, gamma_star: float, X=None, y=None):
    """Normalised margin vs lambda with the LP reference; optionally the smallest-lambda classifier."""
    from helpers import plotting

    ncols = 2 if X is not None else 1
    fig, axes = plotting.subplots(1, ncols, width=4.6 * ncols, height=3.4, squeeze=False)
    ax = axes[0, 0]
    ax.semilogx(path.lambdas, path.margins, "o-", color=plotting.COLORS["gd"], label="regularised optimum")
    ax.axhline(gamma_star, ls="--", color=plotting.COLORS["theory"], label=r"$\gamma^*$ (LP reference)")
    ax.set_xlabel(r"weight decay $\lambda$")
    ax.set_ylabel("normalised margin")
    ax.invert_xaxis()
    ax.legend(loc="lower right")
    if X is not None:
        ax2 = axes[0, 1]
        g = np.linspace(-1, 1, 121)
        G1, G2 = np.meshgrid(g, g)
        P = np.c_[G1.ravel(), G2.ravel(), np.ones(G1.size)]
        F = (np.maximum(P @ path.W[-1].T, 0) @ path.a[-1]).reshape(G1.shape)
        ax2.contourf(G1, G2, F, levels=[-np.inf, 0, np.inf], colors=["#f4cccc", "#cfe2f3"])
        ax2.contour(G1, G2, F, levels=[0], colors="k", linewidths=1)
        ax2.scatter(X[:, 0], X[:, 1], c=np.where(y > 0, "#1f77b4", "#d62728"), s=14)
        ax2.set_aspect("equal")
        ax2.set_title(rf"classifier at $\lambda$ = {path.lambdas[-1]:.0e}")
    return fig


# ============================================================================ depth and rank


def completion_problem(d, rank, n_obs, seed):
    """A ``d x d`` rank-``rank`` matrix with spectral norm 1 and a uniform mask of ``n_obs`` entries."""
    if not (1 <= rank <= d) or not (1 <= n_obs <= d * d):
        raise ValueError(f"need 1 <= rank <= d and 1 <= n_obs <= d^2; got d={d}, rank={rank}, n_obs={n_obs}")
    rng = repro.rng(seed)
    M = rng.standard_normal((d, rank)) @ rng.standard_normal((rank, d))
    M /= np.linalg.norm(M, 2)
    mask = np.zeros(d * d, bool)
    mask[rng.choice(d * d, n_obs, replace=False)] = True
    return M, mask.reshape(d, d)


def _check_completion(M, mask):
    M = _check_matrix(M, "M")
    mask = np.asarray(mask)
    if mask.shape != M.shape or mask.dtype != bool:
        raise ValueError(f"mask must be a boolean array shaped like M {M.shape}")
    if not mask.any():
        raise ValueError("mask observes no entry")
    return M, mask


def nuclear_norm_completion(M, mask, rho=10.0, iters=1500):
    """``argmin ||X||_* subject to X_ij = M_ij on the mask``, by ADMM.

    Splitting ``X = Z``: project onto the constraint, soft-threshold the singular values by
    ``1/rho`` (the proximal map of the nuclear norm), update the scaled dual.
    """
    M, mask = _check_completion(M, mask)
    if rho <= 0 or iters < 1:
        raise ValueError("rho must be positive and iters >= 1")
    Z = np.where(mask, M, 0.0)
    U = np.zeros_like(Z)
    for _ in range(int(iters)):
        X = Z - U
        X[mask] = M[mask]
        P, s, Qt = np.linalg.svd(X + U, full_matrices=False)
        Z = (P * np.maximum(s - 1.0 / rho, 0.0)) @ Qt
        U += X - Z
    X = Z.copy()
    return X


@dataclass
class FactorizationRun:
    depth: int
    X: np.ndarray
    observed_loss: float
    diverged: bool = False
    diverged_at: int | None = None


def deep_factorization_completion(M, mask, depth, init=None, lr=1.0, steps=3000, seed=0):
    """Gradient descent on ``1/2 ||P_mask(W_L ... W_1 - M)||^2`` from a small random init.

    Each ``W_j`` is ``d x d`` with entries ``init * N(0, 1/d)``; by default ``init`` is 1e-3
    for depth <= 2 and 1e-2 for deeper products (deeper products escape the origin more
    slowly: the end-to-end matrix starts at ``init^L``). Depth 1 is plain least squares.
    """
    M, mask = _check_completion(M, mask)
    if M.shape[0] != M.shape[1]:
        raise ValueError("M must be square")
    if int(depth) != depth or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth}")
    _check_steps(lr, steps)
    depth, d = int(depth), M.shape[0]
    init = (1e-3 if depth <= 2 else 1e-2) if init is None else init
    rng = repro.rng(seed)
    Ws = [init * rng.standard_normal((d, d)) / np.sqrt(d) for _ in range(depth)]
    eye = np.eye(d)
    for t in range(int(steps)):
        prefix = [eye]  # prefix[j] = W_j ... W_1 (prefix[0] = I)
        for W in Ws:
            prefix.append(W @ prefix[-1])
        X = prefix[-1]
        G = np.where(mask, X - M, 0.0)
        if not np.all(np.isfinite(G)) or np.abs(G).max() > 1e8:
            return FactorizationRun(depth, X, np.nan, True, t)
        suffix = eye  # W_L ... W_{j+1}
        grads = [None] * depth
        for j in range(depth - 1, -1, -1):
            grads[j] = suffix.T @ G @ prefix[j].T
            suffix = suffix @ Ws[j]
        for j in range(depth):
            Ws[j] -= lr * grads[j]
    X = Ws[0]
    for W in Ws[1:]:
        X = W @ X
    return FactorizationRun(depth, X, float(0.5 * np.sum(np.where(mask, X - M, 0.0) ** 2)))


def effective_rank(X):
    """Roy & Vetterli's effective rank ``exp(H(p))``, ``p = singular values / their sum``."""
    s = np.linalg.svd(_check_matrix(X), compute_uv=False)
    if s.sum() == 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def completion_error(X, M, mask):
    """Relative Frobenius error on the unobserved entries."""
    return float(np.linalg.norm((X - M)[~mask]) / np.linalg.norm(M[~mask]))


def plot_depth_spectra(M, results):
    """Singular values of the recovered matrices (log scale) for each method."""
    from helpers import plotting

    fig, ax = plotting.subplots(1, 1, width=5.5, height=3.4)
    for label, X in results.items():
        ax.semilogy(np.arange(1, M.shape[0] + 1), np.maximum(np.linalg.svd(X, compute_uv=False), 1e-12), "o-", ms=3,
                    label=label)
    ax.semilogy(np.arange(1, M.shape[0] + 1), np.maximum(np.linalg.svd(M, compute_uv=False), 1e-12), "k--", lw=1,
                label="ground truth")
    ax.set_ylim(1e-7, 3)
    ax.set_xlabel("index k")
    ax.set_ylabel(r"$\sigma_k$")
    ax.legend()
    return fig
