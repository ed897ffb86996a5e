"""Capacity of ReLU networks: norms, path norms, rescaling, Path-SGD and the width experiment.

Chapter 1 (Srebro's talk). A bias-free feed-forward ReLU network is given as a list of weight
matrices ``[W1 (h1 x d), W2 (h2 x h1), ..., WL (k x h_{L-1})]`` and computes
``x -> WL relu(... relu(W1 x))``. Because ``relu(c t) = c relu(t)`` for ``c > 0``, multiplying
the weights into a hidden unit by ``c`` and the weights out of it by ``1/c`` leaves the function
unchanged (:func:`rescale`). The sum of squared weights (:func:`l2_norm`) is not invariant
under this rescaling; the path norm (:func:`path_norm`, Neyshabur, Tomioka & Srebro 2015) is,
and so is the Path-SGD update (:func:`train_relu_net` with ``method="path-sgd"``; Neyshabur,
Salakhutdinov & Srebro 2015).

:func:`width_experiment` reproduces the width experiment of Neyshabur, Tomioka & Srebro (2015)
on scikit-learn's bundled digits (no download): bias-free 64-H-10 ReLU nets trained by SGD to
zero training error for a range of widths H. torch is imported only inside that function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# ----------------------------------------------------------------------------- networks


def as_weights(weights) -> list[np.ndarray]:
    """Validate a bias-free network ``[W1 (h1 x d), W2 (h2 x h1), ...]``; return float64 copies.

    Accepts numpy arrays, nested lists or torch tensors (detached and copied).
    """
    if isinstance(weights, np.ndarray) or not hasattr(weights, "__len__") or len(weights) == 0:
        raise ValueError("weights must be a non-empty list of 2-D matrices [W1 (h1 x d), W2 (h2 x h1), ...]")
    out = []
    for k, W in enumerate(weights):
        if hasattr(W, "detach"):  # a torch tensor
            W = W.detach().cpu().double().numpy()
        W = np.array(W, dtype=float)
        if W.ndim != 2 or 0 in W.shape:
            raise ValueError(f"weights[{k}] must be a non-empty 2-D matrix, got shape {W.shape}")
        if not np.all(np.isfinite(W)):
            raise ValueError(f"weights[{k}] has non-finite entries")
        if k > 0 and W.shape[1] != out[-1].shape[0]:
            raise ValueError(
                f"weights[{k}] has {W.shape[1]} columns but weights[{k - 1}] has {out[-1].shape[0]} rows: "
                "layer k must be (units out x units in), with units in = rows of layer k-1"
            )
        out.append(W)
    return out


def forward(weights, X) -> np.ndarray:
    """The network's outputs ``WL relu(... relu(W1 x))`` for each row ``x`` of ``X`` (n x d) -> (n x k)."""
    weights = as_weights(weights)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != weights[0].shape[1]:
        raise ValueError(f"X must be (n x {weights[0].shape[1]}) to match W1, got shape {X.shape}")
    a = X
    for W in weights[:-1]:
        a = np.maximum(a @ W.T, 0.0)
    return a @ weights[-1].T


def l2_norm(weights) -> float:
    """The Euclidean norm of all the weights, ``sqrt(sum_k ||W_k||_F^2)`` (what weight decay penalises)."""
    weights = as_weights(weights)
    return float(np.sqrt(sum(float(np.sum(W * W)) for W in weights)))


def path_norm(weights, p=2) -> float:
    """The l_p path norm ``(sum over input-output paths of prod_{e on path} |w_e|^p)^(1/p)``.

    Neyshabur, Tomioka & Srebro (2015). The sum over the exponentially many paths is the
    matrix product ``1^T |WL|^p ... |W1|^p 1`` (entrywise powers), computed right to left.
    ``p`` is any number ``>= 1`` or ``np.inf`` (the largest product along a path).
    Invariant under :func:`rescale`.
    """
    weights = as_weights(weights)
    if isinstance(p, bool) or not np.isscalar(p) or np.isnan(p) or p < 1:
        raise ValueError(f"p must be a number >= 1 (or np.inf), got {p!r}")
    if np.isinf(p):
        v = np.ones(weights[0].shape[1])
        for W in weights:  # max-times product: the largest path product into each unit
            v = np.max(np.abs(W) * v[None, :], axis=1)
        return float(v.max())
    v = np.ones(weights[0].shape[1])
    for W in weights:
        v = np.abs(W) ** p @ v  # v[u] = sum over paths from the inputs to u of prod |w|^p
    return float(v.sum() ** (1.0 / p))


def rescale(weights, c, layer) -> list[np.ndarray]:
    """Node-wise rescaling: multiply the weights into hidden layer ``layer`` by ``c``, out of it by ``1/c``.

    ``layer`` counts hidden layers from 0: the units of hidden layer ``l`` are the rows of
    ``weights[l]`` (so ``0 <= layer <= len(weights) - 2``). ``c`` is a positive number (every
    unit of the layer) or a vector of positive numbers, one per unit. The network's function
    and its path norms are unchanged (ReLU is positively homogeneous); its l2 norm is not.
    Returns new matrices; the input is not modified.
    """
    weights = as_weights(weights)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise ValueError(f"layer must be an integer hidden-layer index, got {layer!r}")
    if not 0 <= layer <= len(weights) - 2:
        raise ValueError(
            f"layer must index a hidden layer, 0 <= layer <= {len(weights) - 2} for a net with "
            f"{len(weights)} weight matrices, got {layer}"
        )
    h = weights[layer].shape[0]
    c = np.asarray(c, dtype=float)
    if c.ndim == 0:
        c = np.full(h, float(c))
    if c.shape != (h,):
        raise ValueError(f"c must be a positive number or a vector of {h} positive numbers, got shape {c.shape}")
    if not np.all(np.isfinite(c)) or not np.all(c > 0):
        raise ValueError("c must be positive and finite (a negative factor would flip the ReLU)")
    out = [W.copy() for W in weights]
    out[layer] = c[:, None] * out[layer]
    out[layer + 1] = out[layer + 1] / c[None, :]
    return out


def path_scaling(weights) -> list[np.ndarray]:
    """Path-SGD's per-weight scaling ``gamma_e``: the sum over paths through edge ``e`` of the
    product of the squares of the *other* weights on the path (Neyshabur, Salakhutdinov & Srebro 2015).

    For ``W_k`` it is the outer product of (paths from the unit of row i to the outputs) and
    (paths from the inputs to the unit of column j), both by matrix products.
    """
    weights = as_weights(weights)
    sq = [W * W for W in weights]
    g_in = [np.ones(weights[0].shape[1])]
    for S in sq[:-1]:
        g_in.append(S @ g_in[-1])
    g_out = [np.ones(weights[-1].shape[0])]
    for S in reversed(sq[1:]):
        g_out.insert(0, S.T @ g_out[0])
    return [np.outer(go, gi) for go, gi in zip(g_out, g_in)]


# ----------------------------------------------------------------------------- training (numpy, float64)


def _loss_and_grads(weights, X, Y, loss):
    """Mean loss over the batch and its gradients by backpropagation (float64)."""
    acts = [X]
    for W in weights[:-1]:
        acts.append(np.maximum(acts[-1] @ W.T, 0.0))
    out = acts[-1] @ weights[-1].T
    n = X.shape[0]
    if loss == "xent":
        z = out - out.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        value = -float(np.sum(logp * Y)) / n
        g = (np.exp(logp) - Y) / n
    else:
        diff = out - Y
        value = float(np.sum(diff * diff)) / (2 * n)
        g = diff / n
    grads = [None] * len(weights)
    for k in range(len(weights) - 1, -1, -1):
        grads[k] = g.T @ acts[k]
        if k > 0:
            g = (g @ weights[k]) * (acts[k] > 0)
    return value, grads


@dataclass
class TrainResult:
    """The outcome of :func:`train_relu_net`: final ``weights``, the mean training ``loss`` after
    each epoch (entry 0 at the start), ``diverged`` (loss became non-finite; weights are the last
    finite ones) and the ``epochs`` run."""

    weights: list
    loss: np.ndarray
    method: str
    epochs: int
    diverged: bool = False


def train_relu_net(weights, X, y, method="sgd", lr=0.05, epochs=10, batch_size=32, seed=0, loss="xent"):
    """Mini-batch SGD or Path-SGD on a bias-free ReLU network, in float64 with numpy.

    ``method="sgd"``: ``w_e -= lr * dL/dw_e``. ``method="path-sgd"``:
    ``w_e -= lr * dL/dw_e / gamma_e(w)`` with ``gamma_e`` from :func:`path_scaling`
    (Neyshabur, Salakhutdinov & Srebro 2015), which makes every step, and hence the whole
    trajectory of the *function*, invariant under :func:`rescale` of the starting weights.

    ``y``: integer class labels in ``[0, k)`` for ``loss="xent"`` (softmax cross-entropy), or an
    ``n x k`` target matrix for ``loss="square"``. The mini-batch order comes from ``seed``,
    so two runs with the same seed see the same batches.
    """
    weights = as_weights(weights)
    if method not in ("sgd", "path-sgd"):
        raise ValueError(f"method must be 'sgd' or 'path-sgd', got {method!r}")
    if loss not in ("xent", "square"):
        raise ValueError(f"loss must be 'xent' or 'square', got {loss!r}")
    X = np.asarray(X, dtype=float)
    n = X.shape[0] if X.ndim == 2 else 0
    if X.ndim != 2 or X.shape[1] != weights[0].shape[1] or n == 0:
        raise ValueError(f"X must be (n x {weights[0].shape[1]}) to match W1, got shape {X.shape}")
    k = weights[-1].shape[0]
    if loss == "xent":
        y = np.asarray(y)
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k:
            raise ValueError(f"for loss='xent' y must be {n} integer labels in [0, {k})")
        Y = np.eye(k)[y]
    else:
        Y = np.asarray(y, dtype=float)
        if Y.shape != (n, k):
            raise ValueError(f"for loss='square' y must be an ({n} x {k}) target matrix, got {Y.shape}")
    if isinstance(lr, bool) or not np.isscalar(lr) or not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    from helpers.repro import rng as make_rng

    gen = make_rng(seed)
    history = [_loss_and_grads(weights, X, Y, loss)[0]]
    diverged = False
    e = 0
    for e in range(1, epochs + 1):
        order = gen.permutation(n)
        previous = [W.copy() for W in weights]
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            _, grads = _loss_and_grads(weights, X[idx], Y[idx], loss)
            if method == "path-sgd":
                gammas = path_scaling(weights)
                weights = [W - lr * G / gm for W, G, gm in zip(weights, grads, gammas)]
            else:
                weights = [W - lr * G for W, G in zip(weights, grads)]
        with np.errstate(all="ignore"):
            finite = all(np.all(np.isfinite(W)) for W in weights)
            value = _loss_and_grads(weights, X, Y, loss)[0] if finite else float("inf")
        if not np.isfinite(value):
            diverged = True
            weights = previous
            history.append(float("inf"))
            break
        history.append(value)
    return TrainResult(weights=weights, loss=np.asarray(history), method=method, epochs=e, diverged=diverged)


def random_relu_net(sizes, seed=0, scale=1.0) -> list[np.ndarray]:
    """A random bias-free net with layer sizes ``[d, h1, ..., k]``: ``W_k ~ U(-s, s)``, ``s = scale / sqrt(fan_in)``
    (PyTorch's default initialisation when ``scale=1``)."""
    sizes = list(sizes)
    if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be at least two positive integers [d, ..., k], got {sizes}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    from helpers.repro import rng as make_rng

    gen = make_rng(seed)
    return [gen.uniform(-scale / np.sqrt(a), scale / np.sqrt(a), size=(b, a)) for a, b in zip(sizes[:-1], sizes[1:])]


# ----------------------------------------------------------------------------- the width experiment


def load_digits_split(n_train=300, seed=0, scale=16.0):
    """scikit-learn's bundled 8x8 digits (1797 images, no download), inputs divided by ``scale``,
    split at random (from ``seed``) into ``n_train`` training and the rest test images.

    Returns ``(X_train, y_train, X_test, y_test)``.
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or not 10 <= n_train < len(y):
        raise ValueError(f"n_train must be an integer in [10, {len(y) - 1}], got {n_train!r}")
    from helpers.repro import rng as make_rng

    perm = make_rng(seed).permutation(len(y))
    tr, te = perm[:n_train], perm[n_train:]
    X = X / scale
    return X[tr], y[tr], X[te], y[te]


@dataclass
class WidthResult:
    """Per width ``H``: training and test error (fractions), the l2 norm and the l2 path norm of
    the trained net, the epochs used, and whether training error reached zero."""

    widths: np.ndarray
    train_error: np.ndarray
    test_error: np.ndarray
    l2: np.ndarray
    path_l2: np.ndarray
    epochs: np.ndarray
    reached_zero: np.ndarray
    settings: dict = field(default_factory=dict)


def width_experiment(widths=(8, 32, 128, 512, 2048), n_train=300, lr=0.1, batch_size=32, max_epochs=400,
                     loss_tol=0.01, seed=0, device="cpu"):
    """The width experiment of Neyshabur, Tomioka & Srebro (2015) on the bundled digits.

    For each ``H`` in ``widths`` a bias-free 64-H-10 ReLU net (PyTorch's default uniform
    initialisation, drawn from ``seed``) is trained by plain mini-batch SGD (no momentum, no
    weight decay) on ``n_train`` digits with softmax cross-entropy, until its training error is
    zero *and* its mean training loss is below ``loss_tol`` (or ``max_epochs``). All the widths
    are trained together in one batched computation: their hidden layers are stacked into one
    matrix, every net sees the same mini-batches, and a net that has finished stops moving
    (it drops out of the computation), which is equivalent to training them one by one.
    ``device`` (``"cpu"`` or ``"cuda"``; chapters pass ``repro.setup(...).device``) is where
    the nets train; the results come back as numpy arrays either way.
    """
    widths = [int(h) for h in widths]
    if not widths or any(h < 1 for h in widths):
        raise ValueError(f"widths must be positive integers, got {widths}")
    if not lr > 0 or not loss_tol > 0:
        raise ValueError("lr and loss_tol must be > 0")
    for name, v in (("batch_size", batch_size), ("max_epochs", max_epochs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    import torch

    from helpers.repro import rng as make_rng
    from helpers.repro import torch_device

    dev = torch.device(torch_device(device))
    Xtr, ytr, Xte, yte = load_digits_split(n_train, seed=seed)
    d, k = Xtr.shape[1], 10
    gen = make_rng(seed + 1)
    W1_np = [gen.uniform(-1 / np.sqrt(d), 1 / np.sqrt(d), size=(h, d)) for h in widths]
    W2_np = [gen.uniform(-1 / np.sqrt(h), 1 / np.sqrt(h), size=(k, h)) for h in widths]
    dt = torch.float32
    W1 = torch.tensor(np.vstack(W1_np), dtype=dt, device=dev, requires_grad=True)
    W2 = [torch.tensor(W, dtype=dt, device=dev, requires_grad=True) for W in W2_np]
    bounds = np.concatenate([[0], np.cumsum(widths)])
    seg = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    Xt = torch.tensor(Xtr, dtype=dt, device=dev)
    yt = torch.tensor(ytr, dtype=torch.long, device=dev)
    m = len(widths)
    active = np.ones(m, dtype=bool)
    epochs = np.zeros(m, dtype=int)
    order_gen = make_rng(seed + 2)

    def outputs(X):
        hidden = torch.relu(X @ W1.T)
        return [hidden[:, s] @ W.T for s, W in zip(seg, W2)]

    for epoch in range(1, max_epochs + 1):
        perm = torch.as_tensor(order_gen.permutation(n_train), device=dev)
        # only the nets still training are computed: a finished net stops moving (and costs nothing)
        live = [j for j in range(m) if active[j]]
        rows = torch.cat([torch.arange(seg[j].start, seg[j].stop) for j in live]).to(dev)
        cuts = np.concatenate([[0], np.cumsum([widths[j] for j in live])])
        live_seg = [slice(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]
        for start in range(0, n_train, batch_size):
            idx = perm[start:start + batch_size]
            hidden = torch.relu(Xt[idx] @ W1[rows].T)
            total = sum(torch.nn.functional.cross_entropy(hidden[:, s] @ W2[j].T, yt[idx])
                        for j, s in zip(live, live_seg))
            W1.grad = None
            for j in live:
                W2[j].grad = None
            total.backward()
            with torch.no_grad():
                W1 -= lr * W1.grad  # zero on the rows of finished nets
                for j in live:
                    W2[j] -= lr * W2[j].grad
        with torch.no_grad():
            outs = outputs(Xt)
            for j, o in enumerate(outs):
                if not active[j]:
                    continue
                err = float((o.argmax(1) != yt).double().mean())
                val = float(torch.nn.functional.cross_entropy(o, yt))
                epochs[j] = epoch
                if err == 0.0 and val < loss_tol:
                    active[j] = False
        if not active.any():
            break
    with torch.no_grad():
        Xs = torch.tensor(Xte, dtype=dt, device=dev)
        tr_out, te_out = outputs(Xt), outputs(Xs)
        train_err = np.array([float((o.argmax(1) != yt).double().mean()) for o in tr_out])
        yte_t = torch.tensor(yte, device=dev)
        test_err = np.array([float((o.argmax(1) != yte_t).double().mean()) for o in te_out])
        W1f = W1.detach().cpu().double().numpy()
        nets = [[W1f[s], W.detach().cpu().double().numpy()] for s, W in zip(seg, W2)]
    return WidthResult(
        widths=np.array(widths), train_error=train_err, test_error=test_err,
        l2=np.array([l2_norm(w) for w in nets]), path_l2=np.array([path_norm(w, 2) for w in nets]),
        epochs=epochs, reached_zero=train_err == 0.0,
        settings=dict(n_train=n_train, n_test=len(yte), lr=lr, batch_size=batch_size, max_epochs=max_epochs,
                      loss_tol=loss_tol, seed=seed),
    )


# ----------------------------------------------------------------------------- plots


def plot_width(res: WidthResult):
    """Left: training and test error against the width H. Right: l2 norm and l2 path norm against H."""
    from matplotlib.figure import Figure

    from helpers.plotting import COLORS

    fig = Figure(figsize=(8.4, 3.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    H = res.widths
    ax1.plot(H, 100 * res.train_error, "o-", color=COLORS["sgd"], label="training error")
    ax1.plot(H, 100 * res.test_error, "s-", color=COLORS["gd"], label="test error")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("hidden units $H$")
    ax1.set_ylabel("error (%)")
    ax1.set_ylim(bottom=-0.5)
    ax1.legend()
    ax1.set_title("more units, no more training error to remove")
    ax2.plot(H, res.l2, "o-", color=COLORS["other"], label=r"$\ell_2$ norm $\|w\|_2$")
    ax2.plot(H, res.path_l2, "s-", color=COLORS["truth"], label=r"$\ell_2$ path norm $\pi_2(w)$")
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.set_xlabel("hidden units $H$")
    ax2.set_ylabel("norm of the trained net")
    ax2.legend()
    ax2.set_title("which norm tracks the test error?")
    return fig


def plot_rescaling(runs: dict):
    """Training-loss curves (one per entry of ``runs``: label -> TrainResult) on a log scale."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.2), layout="constrained")
    ax = fig.add_subplot()
    styles = ["-", "--", "-", ":"]
    for (label, run), style in zip(runs.items(), styles):
        color = "#2ca02c" if run.method == "path-sgd" else "#1f77b4"
        loss = np.where(np.isfinite(run.loss), run.loss, np.nan)
        ax.plot(np.arange(len(loss)), loss, style, color=color, lw=2.2 if style == "-" else 1.8, label=label)
        if run.diverged:
            ax.annotate(f"diverged at epoch {run.epochs}", (run.epochs - 1, loss[run.epochs - 1]), fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.legend()
    return fig
