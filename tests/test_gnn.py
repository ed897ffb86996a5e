import itertools

import networkx as nx
import numpy as np
import pytest

from helpers import gnn, widgets


def _nx_hash_partition(graphs, iterations):
    hashes = []
    for G in graphs:
        H = G.copy()
        nx.set_node_attributes(H, 0, "c")  # constant start: networkx starts from degrees otherwise
        hashes.append(nx.weisfeiler_lehman_graph_hash(H, node_attr="c", iterations=iterations))
    return gnn._classes(hashes)


def _random_graphs(n_graphs, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_graphs):
        n = int(rng.integers(1, 9))
        out.append(nx.gnp_random_graph(n, float(rng.uniform(0.2, 0.7)), seed=int(rng.integers(1 << 30))))
    return out


@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_wl_partition_matches_networkx_hash_on_atlas(iterations):
    graphs = nx.graph_atlas_g()[1:400]
    assert gnn.same_partition(gnn.wl_partition(graphs, iterations), _nx_hash_partition(graphs, iterations))


def test_wl_partition_matches_networkx_on_random_graphs():
    graphs = _random_graphs(150, 3)
    for it in (2, 4):
        assert gnn.same_partition(gnn.wl_partition(graphs, it), _nx_hash_partition(graphs, it))


def test_wl_colors_match_networkx_subgraph_hashes():
    for G in _random_graphs(30, 7) + [nx.petersen_graph(), nx.path_graph(7)]:
        H = G.copy()
        nx.set_node_attributes(H, 0, "c")
        ref = nx.weisfeiler_lehman_subgraph_hashes(H, node_attr="c", iterations=3)
        col = gnn.wl_colors(G, 3)
        ref_classes = gnn._classes([ref[v][-1] for v in G])
        assert gnn.same_partition(gnn._classes([col[v] for v in G]), ref_classes)


def test_wl_is_complete_on_trees_and_respects_isomorphism():
    trees = [T for n in range(1, 10) for T in nx.nonisomorphic_trees(n)] if hasattr(nx, "nonisomorphic_trees") else []
    trees = [nx.Graph(T) for T in trees]
    part = gnn.wl_partition(trees, 10)
    assert len(part) == len(trees)  # colour refinement decides isomorphism of trees
    # brute-force check: relabelled copies of any graph fall in the same class
    rng = np.random.default_rng(0)
    graphs = _random_graphs(20, 11)
    copies = [nx.relabel_nodes(G, dict(zip(G, rng.permutation(G.number_of_nodes())))) for G in graphs]
    p = gnn.wl_partition(graphs + copies, 4)
    label = {i: k for k, c in enumerate(p) for i in c}
    assert all(label[i] == label[i + len(graphs)] for i in range(len(graphs)))
    # and graphs in different classes are really non-isomorphic
    for c1, c2 in itertools.combinations(p[:8], 2):
        assert not nx.is_isomorphic((graphs + copies)[c1[0]], (graphs + copies)[c2[0]])


def test_wl_cannot_separate_hexagon_from_two_triangles():
    C6 = nx.cycle_graph(6)
    TT = nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3))
    assert gnn.wl_partition([C6, TT], 8) == [[0, 1]]
    E = gnn.gin_embeddings([C6, TT], 3, 8, 0)
    assert gnn.partition([C6, TT], E) == [[0, 1]]


def test_gin_sum_matches_wl_and_batch_matches_single():
    graphs = nx.graph_atlas_g()[1:300]
    E = gnn.gin_embeddings(graphs, 3, 16, 0)
    assert gnn.same_partition(gnn.partition(graphs, E), gnn.wl_partition(graphs, 3))
    for i in (0, 50, 298):
        assert np.allclose(gnn.gin_embedding(graphs[i], 3, 16, 0), E[i], atol=1e-12)
    # mean/max refine nothing finer than WL (GNNs are at most as powerful as WL):
    # every WL class lies inside one class of the weaker aggregator
    wl_classes = gnn.wl_partition(graphs, 3)
    for agg in ("mean", "max"):
        p = gnn.partition(graphs, gnn.gin_embeddings(graphs, 3, 16, 0, aggregate=agg))
        lab = {i: k for k, c in enumerate(p) for i in c}
        for c in wl_classes:
            assert len({lab[i] for i in c}) == 1
        assert len(p) < len(wl_classes)


def test_partition_tolerance_and_callable():
    graphs = [nx.path_graph(2)] * 3
    emb = [np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-13]), np.array([1.0, 2.5])]
    assert gnn.partition(graphs, emb) == [[0, 1], [2]]
    assert gnn.partition(graphs, emb, tol=0.5) == [[0, 1, 2]]
    assert gnn.partition(graphs, lambda G: [G.number_of_nodes()]) == [[0, 1, 2]]


def test_multiset_examples():
    gaps = gnn.multiset_gaps([("rr", "rrr"), ("gr", "ggr"), ("rg", "rrgg")])
    assert np.all(gaps["sum"] > 1e-3)
    assert gaps["max"].max() < 1e-12
    assert gaps["mean"][0] < 1e-12 and gaps["mean"][2] < 1e-12 and gaps["mean"][1] > 1e-3


def test_random_walk_distribution_against_matrix_power():
    G = nx.karate_club_graph()
    A = nx.to_numpy_array(G, weight=None) + np.eye(34)  # edge weights ignored
    P = A / A.sum(1, keepdims=True)
    assert np.allclose(gnn.random_walk_distribution(G, 4), np.linalg.matrix_power(P, 4))
    assert np.allclose(gnn.random_walk_distribution(G, 0), np.eye(34))
    # the stationary distribution is proportional to degree + 1
    pi = gnn.stationary(G)
    assert np.allclose(pi @ P, pi)


def test_influence_linear_equals_random_walk_and_relu_is_close():
    G = nx.random_regular_graph(3, 12, seed=2)
    for k in (1, 2, 4):
        assert np.abs(gnn.influence_distribution(G, k, 0, linear=True) - gnn.random_walk_distribution(G, k)).max() < 1e-12
    R = np.mean([gnn.influence_distribution(G, 2, s, features=16) for s in range(10)], axis=0)
    assert np.nanmean(gnn.total_variation(R, gnn.random_walk_distribution(G, 2))) < 0.1
    # rows are distributions
    assert np.allclose(np.nansum(gnn.influence_distribution(G, 3, 1), axis=1), 1)


def test_influence_matches_finite_differences():
    G = nx.path_graph(4)
    I = gnn.influence_distribution(G, 2, 0, linear=True, features=2)
    assert I[0, 3] == 0 and I[0, 2] > 0  # two layers reach exactly two hops


def test_errors():
    with pytest.raises(ValueError):
        gnn.wl_colors(nx.DiGraph([(0, 1)]), 2)
    with pytest.raises(ValueError):
        gnn.wl_colors(nx.path_graph(3), -1)
    with pytest.raises(ValueError):
        gnn.wl_partition([nx.path_graph(3), "not a graph"], 2)
    with pytest.raises(ValueError):
        gnn.gin_embedding(nx.path_graph(3), 2, 4, 0, aggregate="median")
    with pytest.raises(ValueError):
        gnn.gin_embedding(nx.path_graph(3), 2, 0, 0)
    with pytest.raises(ValueError):
        gnn.partition([nx.path_graph(2)], [[1.0], [2.0]])
    with pytest.raises(ValueError):
        gnn.random_walk_distribution(nx.path_graph(3), 1.5)
    G = nx.path_graph(3)
    G.add_edge(0, 0)
    with pytest.raises(ValueError):
        gnn.influence_distribution(G, 2, 0)
    with pytest.raises(ValueError):
        gnn.influence_distribution(nx.path_graph(3), 0, 0)


def test_widget_grid_all_points():
    spec = widgets.REGISTRY["ch10-influence-spread"]()
    for params in spec.points():
        widgets.render(spec, params, strict=True)
