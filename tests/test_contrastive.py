"""Tests of helpers.contrastive against brute force, closed forms, scipy, scikit-learn and torch."""

import itertools
import math

import matplotlib
import numpy as np
import pytest
from scipy.special import logsumexp

from helpers import contrastive as ct
from helpers import widgets

matplotlib.use("Agg")


def small_world(sigma=1.0, seed=0, C=3, n=4, d=5, rho=(1, 2, 3)):
    return ct.latent_class_data(C, d, n, rho, seed=seed, sigma=sigma)


# ---------------------------------------------------------------- basics


def test_collision_probability_closed_forms():
    assert ct.collision_probability(np.arange(1, 11)) == pytest.approx(385 / 3025)
    assert ct.collision_probability(np.ones(7)) == pytest.approx(1 / 7)
    assert ct.collision_probability([0.2, 0.8]) == pytest.approx(0.68)
    assert ct.collision_probability([0, 1]) == pytest.approx(1.0)


def test_collision_probability_matches_sampling():
    rho = np.array([0.5, 0.3, 0.2])
    g = np.random.default_rng(0)
    a, b = g.choice(3, 200_000, p=rho), g.choice(3, 200_000, p=rho)
    assert ct.collision_probability(rho) == pytest.approx(np.mean(a == b), abs=4e-3)


def test_collision_with_k_negatives_matches_sampling():
    rho = np.array([0.5, 0.3, 0.2])
    g = np.random.default_rng(1)
    cp, cm = g.choice(3, 200_000, p=rho), g.choice(3, (200_000, 4), p=rho)
    assert ct.collision_probability(rho, 4) == pytest.approx(np.mean((cm == cp[:, None]).any(1)), abs=4e-3)
    assert ct.collision_probability([0, 1], 3) == 1.0
    assert ct.collision_probability(rho, 2) == pytest.approx(sum(r * (1 - (1 - r) ** 2) for r in rho))
    with pytest.raises(ValueError):
        ct.collision_probability(rho, 0)


@pytest.mark.parametrize("bad", [[], [[0.5, 0.5]], [-0.1, 1.1], [0, 0], [np.nan, 1]])
def test_collision_probability_rejects_bad_rho(bad):
    with pytest.raises(ValueError):
        ct.collision_probability(bad)


def test_losses_match_references():
    v = np.random.default_rng(1).normal(size=(6, 4)) * 3
    ref = logsumexp(np.concatenate([np.zeros((6, 1)), -v], axis=1), axis=1)
    assert np.allclose(ct.logistic_loss(v), ref)
    assert np.allclose(ct.logistic_loss(v[:, :1]), np.log1p(np.exp(-v[:, 0])))
    assert np.allclose(ct.hinge_loss(v), [max(0.0, 1 - min(r)) for r in v])
    assert ct.loss_at_zero("logistic", 3) == pytest.approx(math.log(4))
    assert ct.loss_at_zero("hinge") == 1.0


def test_latent_class_data_structure():
    a = ct.latent_class_data(4, 6, 5, None, seed=3, sigma=0.0)
    assert a.X.shape == (4, 5, 6) and np.allclose(a.X, a.means[:, None, :])
    assert np.allclose(a.rho, 0.25)
    b = ct.latent_class_data(4, 6, 5, [1, 1, 1, 1], seed=3, sigma=2.0)
    c = ct.latent_class_data(4, 6, 5, None, seed=3, sigma=1.0)
    # same means and the same noise draws at every sigma
    assert np.allclose(b.means, a.means)
    assert np.allclose((b.X - b.means[:, None]) / 2.0, c.X - c.means[:, None])
    d = ct.latent_class_data(4, 6, 5, None, seed=9, sigma=1.0, means=a.means)
    assert np.allclose(d.means, a.means) and not np.allclose(d.X, c.X)
    X, y = d.flat()
    assert X.shape == (20, 6) and list(np.bincount(y)) == [5] * 4


@pytest.mark.parametrize("kwargs", [dict(num_classes=1), dict(dim=0), dict(samples_per_class=0), dict(sigma=-1.0),
                                    dict(rho=[1, 2]), dict(seed=-1), dict(means=np.zeros((2, 2)))])
def test_latent_class_data_rejects(kwargs):
    args = dict(num_classes=3, dim=4, samples_per_class=5, rho=None, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError):
        ct.latent_class_data(**args)


def test_features_accepts_several_forms():
    import torch

    X = np.random.default_rng(0).normal(size=(3, 4, 5))
    W = np.random.default_rng(1).normal(size=(2, 5))
    lin = torch.nn.Linear(5, 2, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(W))
    assert np.allclose(ct.features(W, X), X @ W.T)
    assert np.allclose(ct.features(lin, X), X @ W.T)
    assert np.allclose(ct.features(lambda Z: Z @ W.T, X), X @ W.T)
    assert np.allclose(ct.features(None, X), X)
    with pytest.raises(ValueError):
        ct.features(np.ones((2, 3)), X)


# ---------------------------------------------------------------- losses by brute force


def brute_unsupervised(W, data, loss="logistic"):
    F = data.X @ W.T
    C, n, _ = F.shape
    lf = ct.logistic_loss if loss == "logistic" else ct.hinge_loss
    total = 0.0
    for cp, cm in itertools.product(range(C), repeat=2):
        for i, j, l in itertools.product(range(n), repeat=3):
            v = F[cp, i] @ (F[cp, j] - F[cm, l])
            total += data.rho[cp] * data.rho[cm] * lf(np.array([[v]]))[0] / n**3
    return total


def brute_mean_classifier(W, data, way=2, loss="logistic", accuracy=False):
    F = data.X @ W.T
    mu = F.mean(axis=1)
    C, n, _ = F.shape
    lf = ct.logistic_loss if loss == "logistic" else ct.hinge_loss
    num = den = 0.0
    for T in itertools.permutations(range(C), way):  # ordered draws conditioned on distinct
        p = np.prod(data.rho[list(T)])
        c = T[0]  # the label is the first draw: uniform over the set given the set
        for i in range(n):
            s = np.array([F[c, i] @ mu[k] for k in T])
            if accuracy:
                val = float(s[0] > s[1:].max())
            else:
                val = lf((s[0] - s[1:])[None, :])[0]
            num += p * val / n
        den += p
    return num / den


@pytest.mark.parametrize("loss", ["logistic", "hinge"])
def test_unsupervised_loss_exact_matches_brute_force(loss):
    data = small_world(sigma=1.3)
    W = np.random.default_rng(2).normal(size=(2, 5)) * 0.5
    assert ct.unsupervised_loss(W, data, loss=loss, method="exact") == pytest.approx(brute_unsupervised(W, data, loss))


def test_unsupervised_loss_parts_and_monte_carlo():
    data = small_world(sigma=1.0, n=6)
    W = np.random.default_rng(3).normal(size=(3, 5)) * 0.4
    tau = data.tau
    full = ct.unsupervised_loss(W, data, method="exact")
    same = ct.unsupervised_loss(W, data, part="same")
    diff = ct.unsupervised_loss(W, data, part="different")
    assert full == pytest.approx(tau * same + (1 - tau) * diff)
    mc = ct.unsupervised_loss(W, data, method="mc", num_samples=400_000, seed=1)
    assert mc == pytest.approx(full, abs=5e-3)
    # the same-class part cannot go below l(0) (Jensen over x+ and x- of one class)
    assert same >= math.log(2) - 1e-12
    with pytest.raises(ValueError):
        ct.unsupervised_loss(W, data, negatives=2, method="exact")
    with pytest.raises(ValueError):
        ct.unsupervised_loss(W, data, part="sideways")
    with pytest.raises(ValueError):
        ct.unsupervised_loss(W, data, method="fast")


def test_monte_carlo_with_k_negatives_matches_enumeration():
    data = small_world(sigma=0.7, n=2, C=2, rho=(1, 3))
    W = np.random.default_rng(4).normal(size=(2, 5)) * 0.5
    F = data.X @ W.T
    total = 0.0
    for cp, c1, c2 in itertools.product(range(2), repeat=3):
        p = data.rho[cp] * data.rho[c1] * data.rho[c2]
        for i, j, a, b in itertools.product(range(2), repeat=4):
            v = np.array([[F[cp, i] @ (F[cp, j] - F[c1, a]), F[cp, i] @ (F[cp, j] - F[c2, b])]])
            total += p * ct.logistic_loss(v)[0] / 16
    assert ct.unsupervised_loss(W, data, negatives=2, num_samples=300_000, seed=0) == pytest.approx(total, abs=5e-3)


@pytest.mark.parametrize("way,loss", [(2, "logistic"), (3, "logistic"), (2, "hinge"), (3, "hinge")])
def test_mean_classifier_loss_matches_brute_force(way, loss):
    data = small_world(sigma=1.1, C=4, rho=(1, 2, 3, 4))
    W = np.random.default_rng(5).normal(size=(3, 5)) * 0.5
    assert ct.mean_classifier_loss(W, data, way=way, loss=loss) == pytest.approx(
        brute_mean_classifier(W, data, way, loss))
    assert ct.mean_classifier_accuracy(W, data, way=way) == pytest.approx(
        brute_mean_classifier(W, data, way, accuracy=True))


def test_mean_classifier_task_options():
    data = small_world(sigma=1.0, C=4, rho=(1, 1, 1, 1))
    W = np.eye(5)[:3]
    every = ct.mean_classifier_loss(W, data, tasks=list(itertools.combinations(range(4), 2)))
    assert every == pytest.approx(ct.mean_classifier_loss(W, data, tasks="uniform"))
    assert every == pytest.approx(ct.mean_classifier_loss(W, data, tasks="rho"))  # uniform rho
    for bad in ([(0, 0)], [(0, 9)], [], "all"):
        with pytest.raises(ValueError):
            ct.mean_classifier_loss(W, data, tasks=bad)
    with pytest.raises(ValueError):
        ct.mean_classifier_loss(W, data, way=5)
    with pytest.raises(ValueError):
        ct.mean_classifier_loss(W, "data")


@pytest.mark.parametrize("loss", ["logistic", "hinge"])
def test_jensen_bound_holds_and_is_tight_without_noise(loss):
    W = np.random.default_rng(6).normal(size=(3, 5))
    for sigma in (0.0, 0.3, 1.0, 3.0):
        b = ct.bound_check(W, small_world(sigma=sigma, n=5), loss)
        assert b.L_un >= b.rhs - 1e-12
        if sigma == 0:
            assert b.L_un == pytest.approx(b.rhs, abs=1e-12)
        assert b.sup_bound >= b.L_sup_mu - 1e-12


def test_bound_sweep_gap_is_quadratic():
    sw = ct.bound_sweep([0.0, 0.02, 0.04, 0.08], num_classes=4, dim=6, rep_dim=3, samples_per_class=8, seed=1)
    assert sw.gap[0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(sw.gap[1:] > 0)
    assert sw.slope(0.1) == pytest.approx(2.0, abs=0.1)
    with pytest.raises(ValueError):
        ct.bound_sweep([-1.0])


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("loss,k", [("logistic", 1), ("logistic", 3), ("hinge", 2)])
def test_gradient_matches_autograd(loss, k):
    import torch

    g = np.random.default_rng(7)
    W = g.normal(size=(3, 6))
    a, p, q = g.normal(size=(8, 6)), g.normal(size=(8, 6)), g.normal(size=(8, k, 6))
    value, grad = ct.contrastive_gradient(W, a, p, q, loss)
    Wt = torch.tensor(W, requires_grad=True)
    A, P, Q = (torch.tensor(x) for x in (a, p, q))
    u = A @ Wt.T
    v = (u * (P @ Wt.T)).sum(1, keepdim=True) - torch.einsum("br,bkr->bk", u, Q @ Wt.T)
    if loss == "logistic":
        L = torch.logsumexp(torch.cat([torch.zeros(8, 1, dtype=v.dtype), -v], 1), 1).mean()
    else:
        L = torch.clamp(1 - v.min(1).values, min=0).mean()
    L.backward()
    assert value == pytest.approx(L.detach().item())
    assert np.allclose(grad, Wt.grad.numpy(), atol=1e-12)


def test_training_lowers_the_loss_and_is_reproducible():
    data = ct.latent_class_data(5, 8, 40, None, seed=0, sigma=0.5)
    ev = ct.latent_class_data(5, 8, 12, None, seed=1, sigma=0.5, means=data.means)
    r1 = ct.train_contrastive(data, 3, 1, 400, seed=2, lr=0.05, batch_size=64, checkpoints=(0, 400))
    r2 = ct.train_contrastive(data, 3, 1, 400, seed=2, lr=0.05, batch_size=64)
    assert np.array_equal(r1.W, r2.W) and np.array_equal(r1.history, r2.history)
    assert not r1.diverged and r1.history.shape == (400,)
    assert np.array_equal(r1.snapshots[0], r1.f0.weight.detach().numpy())
    assert np.array_equal(r1.snapshots[400], r1.W)
    assert ct.unsupervised_loss(r1.f, ev) < ct.unsupervised_loss(r1.f0, ev) - 0.05
    r3 = ct.train_contrastive(data, 3, 2, 50, seed=2, block_size=3, batch_size=10)
    assert r3.points_per_step == 10 * (1 + 3 * 3)


def test_training_reports_divergence():
    data = ct.latent_class_data(4, 6, 20, None, seed=0, sigma=1.0)
    r = ct.train_contrastive(data, 3, 1, 500, seed=0, lr=1e3, init_scale=1.0)
    assert r.diverged and r.diverged_at is not None and len(r.history) == r.diverged_at + 1


@pytest.mark.parametrize("kwargs", [dict(rep_dim=0), dict(negatives=0), dict(steps=-1), dict(lr=0.0),
                                    dict(lr=float("nan")), dict(block_size=0), dict(batch_size=0),
                                    dict(loss="square"), dict(checkpoints=(99,)), dict(init_scale=-1.0)])
def test_training_rejects(kwargs):
    data = ct.latent_class_data(3, 4, 5, None, seed=0)
    args = dict(rep_dim=2, negatives=1, steps=10, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError):
        ct.train_contrastive(data, **args)


# ---------------------------------------------------------------- downstream evaluation


def test_few_shot_accuracy_matches_nearest_centroid():
    from sklearn.neighbors import NearestCentroid

    tr = ct.latent_class_data(4, 6, 10, None, seed=0, sigma=1.5)
    te = ct.latent_class_data(4, 6, 30, None, seed=1, sigma=1.5, means=tr.means)
    W = np.random.default_rng(0).normal(size=(3, 6))
    Xtr, ytr = tr.flat()
    Xte, yte = te.flat()
    ref = NearestCentroid().fit(Xtr @ W.T, ytr).score(Xte @ W.T, yte)
    assert ct.few_shot_accuracy(W, tr, te, 10, trials=3) == pytest.approx(ref)
    sub = ct.few_shot_accuracy(W, tr, te, 10, trials=1, classes=[0, 2])
    keep = np.isin(ytr, [0, 2]), np.isin(yte, [0, 2])
    ref2 = NearestCentroid().fit(Xtr[keep[0]] @ W.T, ytr[keep[0]]).score(Xte[keep[1]] @ W.T, yte[keep[1]])
    assert sub == pytest.approx(ref2)
    assert 0 <= ct.few_shot_accuracy(W, tr, te, 2, seed=3, rule="inner") <= 1
    for kwargs in (dict(labels_per_class=11), dict(labels_per_class=0), dict(rule="knn"), dict(classes=[1])):
        args = dict(labels_per_class=2)
        args.update(kwargs)
        with pytest.raises(ValueError):
            ct.few_shot_accuracy(W, tr, te, **args)


def test_linear_probe_matches_sklearn():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    res = ct.linear_probe(X, y, 100, seed=4)
    tr, te = train_test_split(np.arange(len(y)), train_size=100, stratify=y, random_state=4)
    sc = StandardScaler().fit(X[tr])
    clf = LogisticRegression(max_iter=300).fit(sc.transform(X[tr]), y[tr])
    assert res.test_accuracy == pytest.approx(clf.score(sc.transform(X[te]), y[te]))
    assert res.n_train == 100 and res.n_test == len(y) - 100
    idx = np.arange(50)
    res2 = ct.linear_probe(X, y, None, train_index=idx, standardize=False)
    clf2 = LogisticRegression(max_iter=300).fit(X[idx], y[idx])
    assert res2.test_accuracy == pytest.approx(clf2.score(X[50:], y[50:]))
    for args in ((X[:, 0], y, 100), (X, y[:-1], 100), (X, y, 5), (X, y, len(y)), (X, np.zeros(len(y)), 100)):
        with pytest.raises(ValueError):
            ct.linear_probe(*args)


# ---------------------------------------------------------------- rotations


def test_rotate_images():
    imgs = np.arange(2 * 4 * 4, dtype=float).reshape(2, 4, 4)
    rot, lab = ct.rotate_images(imgs)
    assert rot.shape == (8, 4, 4) and list(lab) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert np.array_equal(rot[2], imgs[0].T[::-1])  # 90 degrees counter-clockwise
    assert np.array_equal(rot[4], imgs[0][::-1, ::-1])
    with pytest.raises(ValueError):
        ct.rotate_images(np.zeros((2, 4, 5)))


def test_rotation_pretext_runs_and_learns_something():
    from sklearn.datasets import load_digits

    imgs = load_digits().images[:400] / 16.0
    res = ct.rotation_pretext(imgs, steps=150, seed=0, batch_size=64, lr=0.006)
    assert len(res.train_index) == 300 and len(res.test_index) == 100
    assert res.test_accuracy > 0.5  # chance is 0.25
    feats = ct.layer_features(res.net, imgs[:7])
    assert {k: v.shape for k, v in feats.items()} == {"conv1": (7, 256), "conv2": (7, 128), "fc": (7, 64)}
    res2 = ct.rotation_pretext(imgs, steps=150, seed=0, batch_size=64, lr=0.006)
    assert res2.test_accuracy == res.test_accuracy
    for bad in (np.zeros((10, 6, 6)), np.zeros((10, 8)), np.zeros((2, 8, 8))):
        with pytest.raises(ValueError):
            ct.rotation_pretext(bad, steps=1)
    with pytest.raises(ValueError):
        ct.rotation_pretext(imgs, steps=1, lr=-1)


def test_rotation_pretext_device():
    import torch
    from sklearn.datasets import load_digits

    imgs = load_digits().images[:120] / 16.0
    ref = ct.rotation_pretext(imgs, steps=20, seed=0)
    cpu = ct.rotation_pretext(imgs, steps=20, seed=0, device="cpu")
    assert np.array_equal(ref.history, cpu.history)
    for bad in ("tpu", "gpu0", 3):
        with pytest.raises(ValueError, match="device"):
            ct.rotation_pretext(imgs, steps=1, device=bad)
    if torch.cuda.is_available():
        gpu = ct.rotation_pretext(imgs, steps=20, seed=0, device="cuda")
        assert next(gpu.net.parameters()).device.type == "cpu"  # handed back on the CPU
        assert np.allclose(gpu.history, ref.history, atol=1e-2)  # float32, cuDNN convolutions
    else:
        with pytest.raises(ValueError, match="no GPU"):
            ct.rotation_pretext(imgs, steps=1, device="cuda")


# ---------------------------------------------------------------- widget


def test_widget_every_grid_point_renders():
    spec = ct.negatives_widget()
    assert spec.n_frames <= 40
    for params in spec.points():
        fig = widgets.render(spec, params, strict=True)
        assert fig.axes
    with pytest.raises(ValueError):
        ct.widget_compute(negatives=3)
