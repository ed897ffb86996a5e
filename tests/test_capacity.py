"""helpers.capacity against independent references: path norms by brute-force path
enumeration, gradients by finite differences, Path-SGD's scaling by enumeration, the
network's outputs by torch, and the width experiment's invariants on a tiny sweep."""

import itertools

import numpy as np
import pytest

from helpers import capacity as cp


def brute_path_norm(weights, p):
    """Enumerate every input-output path explicitly."""
    sizes = [weights[0].shape[1]] + [W.shape[0] for W in weights]
    if np.isinf(p):
        best = 0.0
    total = 0.0
    for path in itertools.product(*[range(s) for s in sizes]):
        prod = 1.0
        for k, W in enumerate(weights):
            prod *= abs(W[path[k + 1], path[k]])
        if np.isinf(p):
            best = max(best, prod)
        else:
            total += prod**p
    return best if np.isinf(p) else total ** (1 / p)


@pytest.mark.parametrize("sizes", [[3, 4, 2], [2, 3, 3, 2], [4, 1, 5], [3, 2, 2, 2, 1]])
@pytest.mark.parametrize("p", [1, 2, 3.5, np.inf])
def test_path_norm_matches_enumeration(sizes, p):
    W = cp.random_relu_net(sizes, seed=len(sizes))
    assert cp.path_norm(W, p) == pytest.approx(brute_path_norm(W, p), rel=1e-12)


def test_path_norm_one_hidden_layer_closed_form():
    W1, W2 = cp.random_relu_net([6, 5, 1], seed=1)
    assert cp.path_norm([W1, W2], 1) == pytest.approx(np.sum(np.abs(W2[0]) * np.abs(W1).sum(axis=1)))
    assert cp.path_norm([W1, W2], 2) ** 2 == pytest.approx(np.sum(W2[0] ** 2 * (W1**2).sum(axis=1)))


def test_l2_norm_and_bound():
    W = cp.random_relu_net([5, 4, 3, 2], seed=2)
    assert cp.l2_norm(W) == pytest.approx(np.sqrt(sum(np.linalg.norm(w) ** 2 for w in W)))
    assert cp.path_norm(W, 2) <= np.prod([np.linalg.norm(w) for w in W]) * (1 + 1e-12)


def test_forward_matches_torch():
    torch = pytest.importorskip("torch")
    W = cp.random_relu_net([7, 6, 5, 3], seed=3)
    X = np.random.default_rng(0).standard_normal((10, 7))
    net = torch.nn.Sequential(torch.nn.Linear(7, 6, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(6, 5, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(5, 3, bias=False)).double()
    with torch.no_grad():
        for layer, w in zip([net[0], net[2], net[4]], W):
            layer.weight.copy_(torch.tensor(w))
        ref = net(torch.tensor(X)).numpy()
    assert np.allclose(cp.forward(W, X), ref, atol=1e-14)
    assert cp.path_norm([torch.tensor(w) for w in W]) == pytest.approx(cp.path_norm(W))


@pytest.mark.parametrize("layer", [0, 1])
def test_rescale_keeps_function_and_path_norm_not_l2(layer):
    W = cp.random_relu_net([5, 4, 6, 2], seed=4)
    c = np.random.default_rng(1).uniform(0.1, 10, size=W[layer].shape[0])
    V = cp.rescale(W, c, layer)
    X = np.random.default_rng(2).standard_normal((20, 5))
    assert np.allclose(cp.forward(W, X), cp.forward(V, X), rtol=1e-12, atol=1e-13)
    for p in (1, 2, np.inf):
        assert cp.path_norm(V, p) == pytest.approx(cp.path_norm(W, p), rel=1e-12)
    assert abs(cp.l2_norm(V) - cp.l2_norm(W)) > 1e-3
    assert np.allclose(V[layer], c[:, None] * W[layer]) and np.allclose(V[layer + 1], W[layer + 1] / c)
    # scalar factor, input untouched
    V2 = cp.rescale(W, 2.0, layer)
    assert np.allclose(V2[layer], 2 * W[layer]) and not np.allclose(V2[layer], W[layer])


def _numeric_grad(W, X, Y, loss, k, i, j, h=1e-6):
    Wp = [w.copy() for w in W]
    Wm = [w.copy() for w in W]
    Wp[k][i, j] += h
    Wm[k][i, j] -= h
    return (cp._loss_and_grads(Wp, X, Y, loss)[0] - cp._loss_and_grads(Wm, X, Y, loss)[0]) / (2 * h)


@pytest.mark.parametrize("loss", ["xent", "square"])
def test_backprop_matches_finite_differences(loss):
    W = cp.random_relu_net([4, 5, 3], seed=5)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((8, 4))
    Y = np.eye(3)[rng.integers(0, 3, 8)]
    _, grads = cp._loss_and_grads(W, X, Y, loss)
    for k, i, j in [(0, 0, 0), (0, 4, 3), (1, 2, 1), (1, 0, 4)]:
        assert grads[k][i, j] == pytest.approx(_numeric_grad(W, X, Y, loss, k, i, j), abs=1e-7)


def test_path_scaling_matches_enumeration():
    W = cp.random_relu_net([3, 2, 3, 2], seed=6)
    gam = cp.path_scaling(W)
    sizes = [3, 2, 3, 2]
    for k in range(3):
        for i in range(W[k].shape[0]):
            for j in range(W[k].shape[1]):
                total = 0.0
                for path in itertools.product(*[range(s) for s in sizes]):
                    if path[k] != j or path[k + 1] != i:
                        continue
                    total += np.prod([W[m][path[m + 1], path[m]] ** 2 for m in range(3) if m != k])
                assert gam[k][i, j] == pytest.approx(total, rel=1e-12)


def test_path_sgd_is_rescaling_invariant_and_sgd_is_not():
    X, y, Xte, _ = cp.load_digits_split(60, seed=1)
    W = cp.random_relu_net([64, 10, 8, 10], seed=7)
    V = cp.rescale(cp.rescale(W, np.linspace(0.2, 5, 10), 0), 4.0, 1)
    a = cp.train_relu_net(W, X, y, "path-sgd", lr=0.05, epochs=3, batch_size=16, seed=2)
    b = cp.train_relu_net(V, X, y, "path-sgd", lr=0.05, epochs=3, batch_size=16, seed=2)
    assert np.abs(cp.forward(a.weights, Xte) - cp.forward(b.weights, Xte)).max() < 1e-10
    assert np.allclose(a.loss, b.loss, rtol=1e-10)
    assert a.loss[-1] < a.loss[0]
    s1 = cp.train_relu_net(W, X, y, "sgd", lr=0.05, epochs=3, batch_size=16, seed=2)
    s2 = cp.train_relu_net(V, X, y, "sgd", lr=0.05, epochs=3, batch_size=16, seed=2)
    assert np.abs(cp.forward(s1.weights, Xte) - cp.forward(s2.weights, Xte)).max() > 1e-2


def test_train_reports_divergence():
    X, y, _, _ = cp.load_digits_split(40, seed=0)
    W = cp.random_relu_net([64, 10], seed=0)  # no hidden layer: a linear model, no ReLU to die
    res = cp.train_relu_net(W, X, np.eye(10)[y], "sgd", lr=50.0, epochs=500, batch_size=40, loss="square")
    assert res.diverged and np.all([np.all(np.isfinite(w)) for w in res.weights])


def test_validation_errors():
    W = cp.random_relu_net([3, 4, 2], seed=0)
    with pytest.raises(ValueError, match="columns"):
        cp.path_norm([np.ones((4, 3)), np.ones((2, 5))])
    with pytest.raises(ValueError, match="non-empty list"):
        cp.l2_norm([])
    with pytest.raises(ValueError, match="non-empty list"):
        cp.l2_norm(np.ones((3, 3)))
    with pytest.raises(ValueError, match="p must be"):
        cp.path_norm(W, p=0.5)
    with pytest.raises(ValueError, match="layer must index"):
        cp.rescale(W, 2.0, 1)
    with pytest.raises(ValueError, match="positive"):
        cp.rescale(W, -1.0, 0)
    with pytest.raises(ValueError, match="vector of 4"):
        cp.rescale(W, np.ones(3), 0)
    with pytest.raises(ValueError, match="X must be"):
        cp.forward(W, np.ones((2, 5)))
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="method"):
        cp.train_relu_net(W, X, np.zeros(4, int), method="adam")
    with pytest.raises(ValueError, match="integer labels"):
        cp.train_relu_net(W, X, np.array([0, 1, 2, 5]))
    with pytest.raises(ValueError, match="lr"):
        cp.train_relu_net(W, X, np.zeros(4, int), lr=0)
    with pytest.raises(ValueError, match="n_train"):
        cp.load_digits_split(5000)
    with pytest.raises(ValueError, match="widths"):
        cp.width_experiment(widths=(0,))


def test_width_experiment_small_sweep():
    pytest.importorskip("torch")
    res = cp.width_experiment(widths=(16, 256), n_train=100, lr=0.2, batch_size=50, loss_tol=0.1, max_epochs=200)
    assert np.all(res.train_error == 0) and np.all(res.reached_zero)
    assert res.path_l2[1] < res.path_l2[0]
    # the stored norms are those of the trained nets: recompute from scratch agrees with the formula
    assert np.all(res.l2 > 0) and np.all(res.test_error < 0.5)
    again = cp.width_experiment(widths=(16, 256), n_train=100, lr=0.2, batch_size=50, loss_tol=0.1, max_epochs=200)
    assert np.array_equal(res.test_error, again.test_error)  # seeded


def test_width_experiment_device():
    torch = pytest.importorskip("torch")
    for bad in ("tpu", "gpu0"):
        with pytest.raises(ValueError, match="device"):
            cp.width_experiment(widths=(8,), n_train=50, max_epochs=1, device=bad)
    kw = dict(widths=(8, 64), n_train=60, lr=0.2, batch_size=30, loss_tol=0.1, max_epochs=30)
    ref = cp.width_experiment(**kw)
    assert np.array_equal(ref.test_error, cp.width_experiment(**kw, device="cpu").test_error)
    if torch.cuda.is_available():
        gpu = cp.width_experiment(**kw, device="cuda")
        assert np.allclose(gpu.path_l2, ref.path_l2, rtol=1e-2)  # float32 on another device
    else:
        with pytest.raises(ValueError, match="no GPU"):
            cp.width_experiment(widths=(8,), n_train=50, max_epochs=1, device="cuda")
