"""Tests of helpers.assemblies against a slow loop-based reference of the same model."""

import numpy as np
import pytest

from helpers import assemblies as A
from helpers import widgets


def reference_project(n, k, p, beta, rounds, seed):
    """Neuron-by-neuron, synapse-by-synapse implementation of projection (same random graph)."""
    stim, rec, priority = A.random_synapses(n, k, p, seed)
    stim = [[stim[j, i] for i in range(n)] for j in range(k)]
    rec = [[rec[j, i] for i in range(n)] for j in range(n)]
    prev = None
    out = []
    for _ in range(rounds):
        inputs = []
        for i in range(n):
            s = 0.0
            for j in range(k):
                s += stim[j][i]
            if prev is not None:
                for j in prev:
                    s += rec[j][i]
            inputs.append(s)
        # k-cap: sort by input (rounded like the helper), ties by priority
        order = sorted(range(n), key=lambda i: (-round(inputs[i], 9), priority[i]))
        new = sorted(order[:k])
        for i in new:
            for j in range(k):
                stim[j][i] *= 1 + beta
            if prev is not None:
                for j in prev:
                    rec[j][i] *= 1 + beta
        out.append(new)
        prev = new
    return out


@pytest.mark.parametrize("beta", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("seed", [0, 3])
def test_matches_loop_reference(beta, seed):
    n, k, p, rounds = 60, 6, 0.2, 8
    ref = reference_project(n, k, p, beta, rounds, seed)
    res = A.project(n, k, p, beta, rounds, seed=seed)
    assert res.winners.tolist() == ref
    # overlap and support from the reference winner sets
    for t in range(1, rounds):
        assert res.overlap[t] == len(set(ref[t]) & set(ref[t - 1])) / k
    for t in range(rounds):
        assert res.support[t] == len(set().union(*map(set, ref[: t + 1])))


def test_graph_statistics():
    stim, rec, pr = A.random_synapses(400, 20, 0.1, seed=1)
    assert np.all(np.diag(rec) == 0)
    assert abs(rec.sum() / (400 * 399) - 0.1) < 0.005
    assert sorted(pr.tolist()) == list(range(400))


def test_first_round_winners_have_largest_stimulus_input():
    r = A.project(200, 10, 0.1, 0.0, 1, seed=2)
    stim, _, _ = A.random_synapses(200, 10, 0.1, seed=2)
    inp = stim.sum(axis=0)
    assert inp[r.winners[0]].min() >= np.delete(inp, r.winners[0]).max()


def test_plasticity_gives_convergence_and_no_plasticity_does_not():
    r = A.project(500, 20, 0.05, 0.3, 25, seed=0)
    assert r.converged and r.support[-1] < 3 * 20
    r0 = A.project(500, 20, 0.05, 0.0, 25, seed=0)
    assert r0.support[-1] > r0.support[10]


def test_deterministic_and_shapes():
    a = A.project(100, 5, 0.2, 0.1, 6, seed=4)
    b = A.project(100, 5, 0.2, 0.1, 6, seed=4)
    assert np.array_equal(a.winners, b.winners)
    assert a.winners.shape == (6, 5) and a.overlap[0] == 0 and np.all(np.diff(a.support) >= 0)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(n=1, k=1, p=0.1, beta=0.1, rounds=2), "n must"),
    (dict(n=10, k=10, p=0.1, beta=0.1, rounds=2), "k must"),
    (dict(n=10, k=0, p=0.1, beta=0.1, rounds=2), "k must"),
    (dict(n=10, k=2, p=0.0, beta=0.1, rounds=2), "p must"),
    (dict(n=10, k=2, p=1.5, beta=0.1, rounds=2), "p must"),
    (dict(n=10, k=2, p=0.1, beta=-0.1, rounds=2), "beta must"),
    (dict(n=10, k=2, p=0.1, beta=0.1, rounds=0), "rounds must"),
    (dict(n=10.5, k=2, p=0.1, beta=0.1, rounds=2), "n must"),
])
def test_validation(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        A.project(seed=0, **kwargs)


def test_sweep_validation():
    with pytest.raises(ValueError):
        A.sweep_beta(50, 5, 0.1, [], 3)
    sw = A.sweep_beta(50, 5, 0.2, [0.0, 0.5], 4, seeds=(0,))
    assert sw.support_over_k.shape == (2, 1)


def test_widget_grid_all_points():
    spec = widgets.REGISTRY["ch11-assemblies"]()
    assert spec.n_frames <= 40
    for params in spec.points():
        widgets.render(spec, params, strict=True)


# ---------------------------------------------------------------- the sparse (lazy) method
@pytest.mark.parametrize("beta", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("seed", [0, 3])
def test_sparse_matches_dense_on_the_same_graph(beta, seed):
    syn = A.sparse_synapses(80, 8, 0.15, seed)
    sparse = A._project_sparse(syn, beta, 10)
    dense = A._project_dense(*syn.dense(), 0.15, beta, 10)
    assert np.array_equal(sparse.winners, dense.winners)
    assert np.array_equal(sparse.support, dense.support) and np.array_equal(sparse.overlap, dense.overlap)


def test_sparse_matches_loop_reference():
    # the slow reference on the materialised lazy graph
    syn = A.sparse_synapses(50, 5, 0.2, 1)
    stim, rec, priority = syn.dense()
    res = A.project(50, 5, 0.2, 0.1, 6, seed=1, method="sparse")
    dense = A._project_dense(stim, rec, priority, 0.2, 0.1, 6)
    assert res.winners.tolist() == dense.winners.tolist()


def test_sparse_graph_statistics_and_determinism():
    syn = A.sparse_synapses(2000, 40, 0.05, seed=2)
    rows = [syn.row(i) for i in range(300)]
    assert all(i not in r for i, r in enumerate(rows))          # no self-loops
    assert all(np.all(np.diff(r) > 0) for r in rows)             # sorted, no repeats
    density = sum(r.size for r in rows) / (300 * 1999)
    assert abs(density - 0.05) < 0.003
    assert abs(syn.stim_counts.mean() - 40 * 0.05) < 0.1         # Binomial(k, p)
    assert np.array_equal(syn.row(17), A.sparse_synapses(2000, 40, 0.05, seed=2).row(17))
    assert sorted(syn.priority.tolist()) == list(range(2000))


def test_auto_method_switches_at_dense_max_n():
    small = A.project(300, 10, 0.1, 0.1, 5, seed=0)
    assert np.array_equal(small.winners, A.project(300, 10, 0.1, 0.1, 5, seed=0, method="dense").winners)
    big = A.project(A.DENSE_MAX_N + 1, 20, 0.05, 0.1, 4, seed=0)
    assert np.array_equal(big.winners, A.project(A.DENSE_MAX_N + 1, 20, 0.05, 0.1, 4, seed=0, method="sparse").winners)


def test_sparse_large_n_forms_an_assembly():
    r = A.project(50_000, 224, 0.01, 0.1, 15, seed=0)
    assert r.converged and 1.5 < r.support[-1] / 224 < 3.5
    r0 = A.project(50_000, 224, 0.01, 0.0, 15, seed=0)
    assert r0.support[-1] > r0.support[9] + 224 // 2


@pytest.mark.parametrize("kwargs,msg", [
    (dict(method="blocked"), "method must"),
    (dict(method="sparse", seed=-1), "non-negative integer seed"),
    (dict(method="sparse", seed=np.random.default_rng(0)), "non-negative integer seed"),
])
def test_sparse_validation(kwargs, msg):
    kwargs.setdefault("seed", 0)
    with pytest.raises(ValueError, match=msg):
        A.project(100, 5, 0.1, 0.1, 3, **kwargs)


def test_row_index_validation():
    with pytest.raises(ValueError, match="neuron index"):
        A.sparse_synapses(10, 2, 0.5, 0).row(10)
