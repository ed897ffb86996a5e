"""Graph neural networks: colour refinement (WL), GIN-style embeddings, influence distributions.

Chapter 10 (Jegelka's talk). The papers:

- Weisfeiler & Leman (1968): colour refinement, the "1-WL" test;
- Xu, Hu, Leskovec & Jegelka (2019), "How powerful are graph neural networks?": message
  passing GNNs are at most as discriminative as 1-WL, and reach it when aggregate, combine
  and readout are injective; sum over an MLP of the features (GIN) is, mean and max are not;
- Xu, Li, Tian, Sonobe, Kawarabayashi & Jegelka (2018), "Representation learning on graphs
  with jumping knowledge networks": the influence distribution of a k-layer GCN-style
  network equals (in expectation) the k-step random-walk distribution with self-loops.

Graphs are ``networkx.Graph`` objects; node order is ``list(G.nodes())`` throughout.
torch is imported only by :func:`influence_distribution`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from helpers import widgets

AGGREGATES = ("sum", "mean", "max")


# ----------------------------------------------------------------------------- validation
def _check_graph(G, name: str = "G"):
    import networkx as nx

    if not isinstance(G, nx.Graph):
        raise ValueError(f"{name} must be a networkx.Graph, got {type(G).__name__}")
    if G.is_directed():
        raise ValueError(f"{name} must be undirected; pass G.to_undirected()")
    if G.is_multigraph():
        raise ValueError(f"{name} must be a simple graph; pass networkx.Graph({name})")
    if any(u == v for u, v in G.edges()):
        raise ValueError(f"{name} has self-loops; remove them (nx.selfloop_edges) before calling")
    return G


def _check_int(value, name: str, low: int):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_graphs(graphs):
    graphs = list(graphs)
    for i, G in enumerate(graphs):
        _check_graph(G, f"graphs[{i}]")
    return graphs


# ----------------------------------------------------------------------------- WL colour refinement
def _refine(graphs, iterations: int, node_attr: str | None = None):
    """Colour refinement run jointly on all ``graphs`` so that colours are comparable.

    At each round a node's new colour is its old colour together with the multiset of its
    neighbours' old colours. New integer colours are assigned in sorted order of these
    signatures over all graphs at once, so the result does not depend on the graphs' order.
    """
    if node_attr is None:
        colours = [{v: 0 for v in G} for G in graphs]
    else:
        # initial labels may be arbitrary hashables: map them to integers by sorted repr
        labels = sorted({repr(G.nodes[v].get(node_attr)) for G in graphs for v in G})
        index = {lab: i for i, lab in enumerate(labels)}
        colours = [{v: index[repr(G.nodes[v].get(node_attr))] for v in G} for G in graphs]
    for _ in range(iterations):
        sigs = [
            {v: (c[v], tuple(sorted(c[u] for u in G.neighbors(v)))) for v in G}
            for G, c in zip(graphs, colours)
        ]
        table = {s: i for i, s in enumerate(sorted({s for sg in sigs for s in sg.values()}))}
        colours = [{v: table[s] for v, s in sg.items()} for sg in sigs]
    return colours


def wl_colors(G, iterations: int, node_attr: str | None = None) -> dict:
    """Node colours after ``iterations`` rounds of 1-WL colour refinement (Weisfeiler & Leman 1968).

    All nodes start with one colour (or with the node attribute ``node_attr``); each round
    replaces a node's colour by (its colour, multiset of neighbours' colours), relabelled to
    integers 0, 1, ... Two nodes get the same colour iff WL cannot tell their depth-
    ``iterations`` unfolding trees apart. Returns ``{node: int}``.
    """
    _check_graph(G)
    iterations = _check_int(iterations, "iterations", 0)
    return _refine([G], iterations, node_attr)[0]


def wl_partition(graphs: Sequence, iterations: int, node_attr: str | None = None) -> list[list[int]]:
    """The classes of graphs that the WL test with ``iterations`` rounds cannot tell apart.

    Two graphs are WL-equivalent when their colour histograms agree (colours refined jointly,
    so they mean the same across graphs). Because each new colour records the old one, equal
    final histograms imply equal histograms at every earlier round. Returns a list of lists of
    indices into ``graphs``, each sorted, ordered by their first index.
    """
    graphs = _check_graphs(graphs)
    iterations = _check_int(iterations, "iterations", 0)
    colours = _refine(graphs, iterations, node_attr)
    keys = [tuple(sorted(c.values())) for c in colours]
    return _classes(keys)


def _classes(keys) -> list[list[int]]:
    groups: dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


# ----------------------------------------------------------------------------- GIN-style embeddings
def _mlp_params(rng, fan_in: int, width: int):
    # Gaussian weights and biases: a random two-layer MLP is injective on a finite set of
    # inputs with probability one (its first layer separates distinct inputs; biases keep ReLUs
    # from all switching off together).
    W1 = rng.standard_normal((fan_in, width)) / np.sqrt(fan_in)
    b1 = rng.standard_normal(width) * 0.5
    W2 = rng.standard_normal((width, width)) / np.sqrt(width)
    b2 = rng.standard_normal(width) * 0.5
    return W1, b1, W2, b2


ACTIVATIONS = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0)}


def _mlp(params, H, activation: str = "tanh"):
    W1, b1, W2, b2 = params
    act = ACTIVATIONS[activation]
    return act(act(H @ W1 + b1) @ W2 + b2)


class _Batch:
    """All graphs' nodes stacked into one block-diagonal graph (for fast batched layers)."""

    def __init__(self, graphs):
        import scipy.sparse as sp

        sizes = np.array([G.number_of_nodes() for G in graphs], dtype=int)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        src, dst = [], []
        for G, off in zip(graphs, offsets[:-1]):
            index = {v: i for i, v in enumerate(G.nodes())}
            for u, v in G.edges():
                a, b = index[u] + off, index[v] + off
                src += [a, b]
                dst += [b, a]
        N = int(offsets[-1])
        src, dst = np.array(src, dtype=int), np.array(dst, dtype=int)
        order = np.lexsort((src, dst))  # edges grouped by receiving node, for segment max
        self.src, self.dst = src[order], dst[order]
        self.A = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(N, N)).T.tocsr()
        self.deg = np.bincount(self.dst, minlength=N).astype(float)
        self.sizes, self.offsets, self.N = sizes, offsets, N

    def aggregate(self, H, how: str):
        """Aggregate neighbour rows; an isolated node receives the zero vector (a convention)."""
        if how == "sum":
            return self.A @ H
        if how == "mean":
            return (self.A @ H) / np.maximum(self.deg, 1.0)[:, None]
        out = np.zeros_like(H)
        if self.src.size:
            has = np.flatnonzero(self.deg > 0)
            starts = np.searchsorted(self.dst, has)
            out[has] = np.maximum.reduceat(H[self.src], starts, axis=0)
        return out

    def readout(self, H, how: str):
        out = np.zeros((len(self.sizes), H.shape[1]))
        full = np.flatnonzero(self.sizes > 0)
        if full.size == 0:
            return out
        starts = self.offsets[full]
        if how == "max":
            out[full] = np.maximum.reduceat(H, starts, axis=0)
        else:
            out[full] = np.add.reduceat(H, starts, axis=0)
            if how == "mean":
                out[full] /= self.sizes[full][:, None]
        return out


def gin_embedding(G, layers: int, width: int, seed: int, aggregate: str = "sum",
                  eps: float | None = None, activation: str = "tanh") -> np.ndarray:
    """Graph embedding of a GIN-style network with random weights (Xu et al. 2019, eq. 4.1).

    Every node starts with the feature 1 (no labels). Layer ``l`` computes
    ``h_v <- MLP_l((1 + eps) h_v + AGG_{u in N(v)} h_u)`` with ``AGG`` = ``aggregate`` over the
    neighbours, and the readout concatenates ``AGG_v h_v`` over all layers 0..layers (the
    jumping-knowledge readout of the GIN paper, with the same aggregator). ``aggregate="sum"``
    is GIN; "mean" and "max" are the variants the paper shows to be less powerful. The same
    ``seed`` gives the same weights for every graph, so embeddings are comparable.

    The MLPs are random two-layer networks with ``activation`` ("tanh" by default). A random
    ReLU MLP is piecewise linear with few pieces, and on one linear piece a sum of ``f(x)``
    only sees the sum of the ``x``: multisets such as {1, 3} and {2, 2} collide. A smooth
    activation avoids that generically (the chapter measures both).
    """
    _check_graph(G)
    return gin_embeddings([G], layers, width, seed, aggregate, eps, activation)[0]


def gin_embeddings(graphs: Sequence, layers: int, width: int, seed: int, aggregate: str = "sum",
                   eps: float | None = None, activation: str = "tanh") -> np.ndarray:
    """:func:`gin_embedding` of many graphs at once (same weights), one row per graph."""
    graphs = _check_graphs(graphs)
    layers = _check_int(layers, "layers", 0)
    width = _check_int(width, "width", 1)
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    rng = np.random.default_rng(_check_int(seed, "seed", 0))
    if eps is None:
        eps = float(rng.uniform(0.1, 0.9))  # a generic epsilon (the paper wants it irrational)
    elif not np.isfinite(eps):
        raise ValueError(f"eps must be finite, got {eps}")
    batch = _Batch(graphs)
    H = np.ones((batch.N, 1))
    outs = [batch.readout(H, aggregate)]
    fan_in = 1
    for _ in range(layers):
        params = _mlp_params(rng, fan_in, width)
        H = _mlp(params, (1.0 + eps) * H + batch.aggregate(H, aggregate), activation)
        outs.append(batch.readout(H, aggregate))
        fan_in = width
    return np.hstack(outs)


def partition(graphs: Sequence, embed, tol: float = 1e-9) -> list[list[int]]:
    """Classes of graphs with equal embeddings (within ``tol``, relative to the largest entry).

    ``embed`` is either a callable ``G -> vector`` or a sequence of precomputed vectors, one per
    graph. Two graphs are put together when their embeddings differ by at most
    ``tol * max(1, max |entry|)`` in every coordinate; classes are the connected components of
    this relation. Same output format as :func:`wl_partition`.
    """
    graphs = list(graphs)
    if callable(embed):
        vecs = [np.asarray(embed(G), dtype=float).ravel() for G in graphs]
    else:
        vecs = [np.asarray(e, dtype=float).ravel() for e in embed]
        if len(vecs) != len(graphs):
            raise ValueError(f"embed has {len(vecs)} vectors for {len(graphs)} graphs")
    if not vecs:
        return []
    if len({v.size for v in vecs}) != 1:
        raise ValueError("all embeddings must have the same length")
    if not (tol >= 0):
        raise ValueError(f"tol must be >= 0, got {tol}")
    E = np.vstack(vecs)
    if not np.all(np.isfinite(E)):
        raise ValueError("embeddings contain non-finite values")
    thr = tol * max(1.0, float(np.abs(E).max()))
    # Sort by a fixed random projection: if two rows are within thr in every coordinate, their
    # projections are within thr * ||w||_1, so only a window of neighbours must be compared.
    w = np.random.default_rng(12345).standard_normal(E.shape[1])
    z = E @ w
    window = thr * np.abs(w).sum() * (1 + 1e-9) + 1e-300
    order = np.argsort(z, kind="stable")
    zs = z[order]
    ends = np.searchsorted(zs, zs + window, side="right")
    rows, cols = [], []
    for a in range(len(order)):
        cand = order[a + 1:ends[a]]
        if cand.size:
            close = cand[np.max(np.abs(E[cand] - E[order[a]]), axis=1) <= thr]
            rows.append(np.full(close.size, order[a]))
            cols.append(close)
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = len(vecs)
    rows = np.concatenate(rows) if rows else np.zeros(0, int)
    cols = np.concatenate(cols) if cols else np.zeros(0, int)
    graph = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return _classes(labels.tolist())


def same_partition(p: list[list[int]], q: list[list[int]]) -> bool:
    """True when two partitions (lists of index lists) are equal as sets of sets."""
    return {frozenset(c) for c in p} == {frozenset(c) for c in q}


# ----------------------------------------------------------------------------- multisets
def multiset_gaps(pairs: Sequence[tuple[Sequence, Sequence]], width: int = 16, seed: int = 0) -> dict:
    """How far apart sum, mean and max put each pair of multisets (Xu et al. 2019, Fig. 3).

    Elements are labels (e.g. "r", "g"); each label gets a random feature vector, passed
    through a random ReLU MLP ``f``, and a multiset ``X`` is mapped to sum/mean/max of
    ``f(x)``. Returns ``{aggregate: array of max-abs gaps, one per pair}``; a gap of 0 means
    the aggregator cannot tell the pair apart.
    """
    width = _check_int(width, "width", 1)
    pairs = list(pairs)
    for a, b in pairs:
        if len(a) == 0 or len(b) == 0:
            raise ValueError("multisets must be non-empty")
    labels = sorted({x for a, b in pairs for x in (*a, *b)}, key=repr)
    rng = np.random.default_rng(_check_int(seed, "seed", 0))
    feats = {lab: rng.standard_normal(width) for lab in labels}
    params = _mlp_params(rng, width, width)

    def agg(ms, how):
        F = _mlp(params, np.vstack([feats[x] for x in ms]))
        return {"sum": F.sum(axis=0), "mean": F.mean(axis=0), "max": F.max(axis=0)}[how]

    return {how: np.array([np.max(np.abs(agg(a, how) - agg(b, how))) for a, b in pairs])
            for how in AGGREGATES}


# ----------------------------------------------------------------------------- influence = random walk
def random_walk_distribution(G, steps: int) -> np.ndarray:
    """``P**steps`` with ``P = D~^{-1} A~``, ``A~ = A + I`` (the lazy walk of the JK-Net paper).

    Row ``x`` is the distribution of a ``steps``-step walk started at node ``x`` (node order
    ``list(G.nodes())``); at each step the walker stays or moves to a neighbour, uniformly.
    """
    _check_graph(G)
    steps = _check_int(steps, "steps", 0)
    import networkx as nx

    n = G.number_of_nodes()
    A = nx.to_numpy_array(G, nodelist=list(G.nodes()), dtype=float, weight=None) + np.eye(n)
    P = A / A.sum(axis=1, keepdims=True)
    return np.linalg.matrix_power(P, steps) if n else np.zeros((0, 0))


def influence_distribution(G, layers: int, seed: int, linear: bool = False, features: int = 8) -> np.ndarray:
    """Jacobian influence distribution of a ``layers``-layer GCN-style network (Xu et al. 2018).

    The network is ``h_v <- relu(W_l * mean_{u in N(v) + v} h_u)`` (identity instead of relu when
    ``linear``) with random Gaussian ``W_l`` and random input features. The influence score
    ``I(x, y)`` is the sum of absolute entries of the Jacobian ``d h_x^(k) / d h_y^(0)``
    (computed with torch autograd in float64); row ``x`` of the result is ``I(x, .)``
    normalised to sum to one. Node order ``list(G.nodes())``. A row whose Jacobian is all zero
    (every ReLU off) is returned as NaN.
    """
    _check_graph(G)
    layers = _check_int(layers, "layers", 1)
    features = _check_int(features, "features", 1)
    seed = _check_int(seed, "seed", 0)
    import torch

    n = G.number_of_nodes()
    if n == 0:
        raise ValueError("G has no nodes")
    P = torch.from_numpy(random_walk_distribution(G, 1))
    gen = torch.Generator().manual_seed(seed)
    Ws = [torch.randn(features, features, generator=gen, dtype=torch.float64) / np.sqrt(features)
          for _ in range(layers)]
    H0 = torch.randn(n, features, generator=gen, dtype=torch.float64)

    def net(H):
        for W in Ws:
            H = (P @ H) @ W
            if not linear:
                H = torch.relu(H)
        return H

    J = torch.autograd.functional.jacobian(net, H0, vectorize=True)  # (n, f, n, f)
    scores = J.abs().sum(dim=(1, 3)).numpy()
    tot = scores.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(tot > 0, scores / np.where(tot > 0, tot, 1.0), np.nan)
    return out


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise total-variation distance ``0.5 * sum |p - q|`` between distributions."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    if p.shape != q.shape:
        raise ValueError(f"shapes differ: {p.shape} vs {q.shape}")
    return 0.5 * np.abs(p - q).sum(axis=-1)


def stationary(G) -> np.ndarray:
    """Stationary distribution of the self-loop walk: proportional to degree + 1 (connected G)."""
    _check_graph(G)
    d = np.array([G.degree(v) + 1.0 for v in G.nodes()])
    return d / d.sum()


# ----------------------------------------------------------------------------- widget
@dataclass
class SpreadResult:
    depth: int
    graphs: list            # [(name, G, pos, start node index, row of P^k, tv curve)]
    depths: np.ndarray


def example_graphs(n: int = 32, seed: int = 0):
    """An expander (random 3-regular graph) and a tree (balanced binary) of similar size."""
    import networkx as nx

    n = _check_int(n, "n", 8)
    if n % 2:
        n += 1  # a 3-regular graph needs an even number of nodes
    expander = nx.random_regular_graph(3, n, seed=seed)
    h = max(2, int(np.log2(n + 1)) - 1)
    tree = nx.balanced_tree(2, h)
    return [("random 3-regular graph (expander)", expander, 0),
            ("binary tree (start at a leaf)", tree, tree.number_of_nodes() - 1)]


def spread(depth: int, max_depth: int = 12, n: int = 32, seed: int = 0, _cache={}) -> SpreadResult:
    """Random-walk (= linear influence) distribution after ``depth`` layers on two graphs."""
    import networkx as nx

    depth = _check_int(depth, "depth", 0)
    key = (max_depth, n, seed)
    if key not in _cache:
        items = []
        for name, G, start in example_graphs(n, seed):
            pos = nx.spring_layout(G, seed=seed) if "regular" in name else _tree_layout(G)
            pi = stationary(G)
            rows = [random_walk_distribution(G, k)[start] for k in range(max_depth + 1)]
            tv = np.array([total_variation(r, pi) for r in rows])
            items.append((name, G, pos, start, rows, tv))
        _cache[key] = items
    items = _cache[key]
    depths = np.arange(max_depth + 1)
    if depth > max_depth:
        raise ValueError(f"depth must be <= max_depth={max_depth}")
    graphs = [(name, G, pos, start, rows[depth], tv) for name, G, pos, start, rows, tv in items]
    return SpreadResult(depth=depth, graphs=graphs, depths=depths)


def _tree_layout(G):
    # layered drawing of the balanced tree rooted at 0: depth on the y axis
    import networkx as nx

    depth = nx.single_source_shortest_path_length(G, 0)
    levels: dict = {}
    for v, d in sorted(depth.items()):
        levels.setdefault(d, []).append(v)
    pos = {}
    for d, vs in levels.items():
        for i, v in enumerate(vs):
            pos[v] = ((i + 0.5) / len(vs) * 2 - 1, -d)
    return pos


def plot_spread(res: SpreadResult):
    """Two graph drawings coloured by the walk distribution, and the distance to stationarity."""
    from helpers import plotting

    fig, axes = plotting.subplots(1, 3, width=10.5, height=3.4)
    for ax, (name, G, pos, start, row, _tv) in zip(axes[:2], res.graphs):
        nodes = list(G.nodes())
        xy = np.array([pos[v] for v in nodes])
        from matplotlib.collections import LineCollection

        # one collection for all edges: far cheaper to draw than a line per edge
        ax.add_collection(LineCollection([(pos[u], pos[v]) for u, v in G.edges()], colors="#bbbbbb",
                                         linewidths=0.7, zorder=1))
        ax.scatter(xy[:, 0], xy[:, 1], c=row, cmap="viridis", vmin=0, vmax=max(row.max(), 1e-12),
                   s=46, edgecolors="k", linewidths=0.3, zorder=2)
        ax.scatter([xy[start, 0]], [xy[start, 1]], s=140, facecolors="none", edgecolors="#d62728",
                   linewidths=1.6, zorder=3)
        ax.set_title(f"{name}\nk = {res.depth}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    ax = axes[2]
    for (name, *_rest, tv), color in zip(res.graphs, ("#1f77b4", "#ff7f0e")):
        ax.plot(res.depths, tv, "o-", ms=3, color=color, label=name.split(" (")[0])
        ax.plot([res.depth], [tv[res.depth]], "o", ms=9, color=color, mfc="none")
    ax.set_xlabel("layers k")
    ax.set_ylabel("TV(walk from red node, stationary)")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right")
    return fig


@widgets.register("ch10-influence-spread")
def spread_spec() -> widgets.Spec:
    """Depth slider: influence (= random walk) distribution spreading on an expander vs a tree."""
    return widgets.Spec(
        compute=spread,
        plot=plot_spread,
        grid={"depth": list(range(0, 13))},
        default={"depth": 2},
        labels={"depth": "layers k"},
        title="Influence of one node after k layers: expander vs tree",
    )
