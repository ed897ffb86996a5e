"""Assemblies of neurons: the projection operation of Papadimitriou and Vempala.

The model (Papadimitriou & Vempala, ITCS 2019; Papadimitriou, Vempala, Mitropolsky, Collins
& Maass, PNAS 2020): a *stimulus* of ``k`` neurons fires into a brain area of ``n`` neurons.
Synapses are random: each stimulus-to-area and each area-to-area pair (no self-loops) is
present independently with probability ``p`` (a directed G(n, p) graph) and starts with
weight 1. At every round each neuron of the area sums the weights of its synapses from the
neurons that fired in the previous round (the stimulus, which fires every round, and the
area's previous winners); the ``k`` neurons with the largest sums fire next (the *k-cap*).
Hebbian plasticity multiplies the weight of every synapse from a neuron that fired to a
neuron that fires next by ``1 + beta``.

With ``beta`` large enough the winner sets converge to a stable *assembly*; the total support
(every neuron that ever won) stays a small multiple of ``k``. With ``beta = 0`` nothing is
learned and the winners keep wandering.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers import repro, widgets

#: inputs are compared after rounding to this many decimals, so that sums of the same weights
#: in a different order (float rounding) never break a tie differently
_DECIMALS = 9


@dataclass
class Projection:
    """What :func:`project` returns.

    ``winners[t]`` holds the sorted indices of the ``k`` winners of round ``t`` (round 0: the
    stimulus alone fires); ``overlap[t] = |W_t ∩ W_{t-1}| / k`` (``overlap[0] = 0``);
    ``support[t]`` is the number of distinct neurons among ``W_0, ..., W_t``.
    """

    n: int
    k: int
    p: float
    beta: float
    winners: np.ndarray  # (rounds, k) int
    overlap: np.ndarray  # (rounds,)
    support: np.ndarray  # (rounds,) int

    @property
    def rounds(self) -> int:
        return len(self.support)

    @property
    def converged(self) -> bool:
        """True when the last two winner sets coincide."""
        return self.rounds >= 2 and bool(self.overlap[-1] == 1.0)


def _check(n, k, p, beta, rounds):
    for name, v in (("n", n), ("k", k), ("rounds", rounds)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise ValueError(f"{name} must be an integer, got {v!r}")
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if not 1 <= k < n:
        raise ValueError(f"k must satisfy 1 <= k < n, got k={k}, n={n}")
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be a probability in (0, 1], got {p}")
    if not np.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0 (plasticity), got {beta}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")


def random_synapses(n: int, k: int, p: float, seed=0):
    """The random graph of the model: (stimulus-to-area ``k x n``, area-to-area ``n x n``) 0/1 weights
    and a random priority per neuron used to break ties between equal inputs."""
    _check(n, k, p, 0.0, 1)
    rng = repro.rng(seed)
    stim = (rng.random((k, n)) < p).astype(float)
    rec = (rng.random((n, n)) < p).astype(float)
    np.fill_diagonal(rec, 0.0)
    priority = rng.permutation(n)
    return stim, rec, priority


def _cap(inputs: np.ndarray, priority: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest inputs; ties go to the neuron with the smaller priority."""
    order = np.lexsort((priority, -np.round(inputs, _DECIMALS)))
    return np.sort(order[:k])


def project(n: int, k: int, p: float, beta: float, rounds: int, seed=0, method: str = "auto") -> Projection:
    """Project a fixed stimulus of ``k`` neurons into an area of ``n`` neurons for ``rounds`` rounds.

    Explicit G(n, p) synapses, k-cap, Hebbian factor ``1 + beta`` (Papadimitriou & Vempala 2019).

    ``method``: ``"dense"`` stores the ``n x n`` synapse matrix (drawn by :func:`random_synapses`);
    ``"sparse"`` draws each neuron's outgoing synapses only when it first fires and keeps only
    those rows (:func:`sparse_synapses`), so memory grows with the support, not with ``n^2``:
    ``n = 10^5`` or ``10^6`` fit in memory and minutes. The two methods draw different (equally
    distributed) random graphs from the same seed; on the same graph they give the same winners
    (tested). ``"auto"`` (default) is dense up to ``n = 5000`` and sparse above.
    """
    _check(n, k, p, beta, rounds)
    if method not in ("auto", "dense", "sparse"):
        raise ValueError(f"method must be 'auto', 'dense' or 'sparse', got {method!r}")
    if method == "sparse" or (method == "auto" and n > DENSE_MAX_N):
        return _project_sparse(sparse_synapses(n, k, p, seed), beta, rounds)
    stim, rec, priority = random_synapses(n, k, p, seed)
    return _project_dense(stim, rec, priority, p, beta, rounds)


#: above this many neurons :func:`project` switches to the sparse method (a dense n x n float
#: matrix at n = 5000 already takes 200 MB)
DENSE_MAX_N = 5000


def _project_dense(stim, rec, priority, p, beta, rounds) -> Projection:
    """The projection dynamics on explicit (k x n, n x n) weight matrices, modified in place."""
    k, n = stim.shape
    winners = np.empty((rounds, k), dtype=int)
    overlap = np.zeros(rounds)
    support = np.empty(rounds, dtype=int)
    seen = np.zeros(n, dtype=bool)
    prev = None
    for t in range(rounds):
        inputs = stim.sum(axis=0)
        if prev is not None:
            inputs = inputs + rec[prev].sum(axis=0)
        new = _cap(inputs, priority, k)
        if beta > 0:  # Hebbian: strengthen synapses from the neurons that fired into the new winners
            stim[:, new] *= 1.0 + beta
            if prev is not None:
                rec[np.ix_(prev, new)] *= 1.0 + beta
        if prev is not None:
            overlap[t] = np.intersect1d(prev, new, assume_unique=True).size / k
        seen[new] = True
        support[t] = int(seen.sum())
        winners[t] = new
        prev = new
    return Projection(n=n, k=k, p=float(p), beta=float(beta), winners=winners, overlap=overlap, support=support)


@dataclass
class SparseSynapses:
    """The random graph of the model, drawn lazily.

    ``stim_counts[j]`` is the number of stimulus neurons with a synapse into neuron ``j``
    (Binomial(k, p), which is all the dynamics needs of the stimulus: every stimulus synapse
    into ``j`` carries the same weight); ``row(i)`` the sorted targets of neuron ``i``'s synapses
    inside the area (each of the other ``n - 1`` neurons independently with probability ``p``),
    drawn from a generator seeded by ``(seed, i)`` so that a row is the same whenever it is
    drawn; ``priority`` breaks ties as in :func:`random_synapses`.
    """

    n: int
    k: int
    p: float
    seed: int
    stim_counts: np.ndarray
    priority: np.ndarray

    def row(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n:
            raise ValueError(f"neuron index must be in [0, {self.n}), got {i}")
        rng = np.random.default_rng((self.seed, 1, int(i)))
        # the number of targets, then which ones: O(n p) work when n p is small against n
        count = int(rng.binomial(self.n - 1, self.p))
        targets = rng.choice(self.n - 1, size=count, replace=False)
        targets[targets >= i] += 1  # skip the self-loop
        targets.sort()
        return targets.astype(np.int64)

    def dense(self):
        """The same graph as explicit matrices ``(stim, rec, priority)`` (for tests; O(n^2) memory)."""
        stim = (np.arange(self.k)[:, None] < self.stim_counts[None, :]).astype(float)
        rec = np.zeros((self.n, self.n))
        for i in range(self.n):
            rec[i, self.row(i)] = 1.0
        return stim, rec, self.priority.copy()


def sparse_synapses(n: int, k: int, p: float, seed: int = 0) -> SparseSynapses:
    """The model's random graph for :func:`project`'s sparse method (rows drawn on demand)."""
    _check(n, k, p, 0.0, 1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"the sparse method needs a non-negative integer seed, got {seed!r}")
    rng = np.random.default_rng((int(seed), 0))
    counts = rng.binomial(k, p, size=n)
    priority = rng.permutation(n)
    return SparseSynapses(n=n, k=k, p=float(p), seed=int(seed), stim_counts=counts, priority=priority)


def _project_sparse(syn: SparseSynapses, beta: float, rounds: int) -> Projection:
    """The projection dynamics with rows of the synapse matrix kept only for neurons that fired.

    Only synapses out of a neuron that fired ever matter (inputs sum over the previous winners)
    or change (Hebbian updates go from the previous to the new winners), so the state is: the
    stimulus weight of each neuron (all its stimulus synapses share it), and for every neuron
    that fired its row of targets with their current weights.
    """
    n, k = syn.n, syn.k
    stim_w = np.ones(n)
    rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    winners = np.empty((rounds, k), dtype=int)
    overlap = np.zeros(rounds)
    support = np.empty(rounds, dtype=int)
    seen = np.zeros(n, dtype=bool)
    is_new = np.zeros(n, dtype=bool)
    prev = None
    for t in range(rounds):
        inputs = syn.stim_counts * stim_w
        if prev is not None:
            targets = np.concatenate([rows[i][0] for i in prev])
            weights = np.concatenate([rows[i][1] for i in prev])
            inputs = inputs + np.bincount(targets, weights=weights, minlength=n)
        new = _cap(inputs, syn.priority, k)
        if beta > 0:
            stim_w[new] *= 1.0 + beta
            if prev is not None:
                is_new[new] = True
                for i in prev:
                    idx, w = rows[i]
                    w[is_new[idx]] *= 1.0 + beta
                is_new[new] = False
        for i in new:
            if int(i) not in rows:
                idx = syn.row(int(i))
                rows[int(i)] = (idx, np.ones(idx.size))
        if prev is not None:
            overlap[t] = np.intersect1d(prev, new, assume_unique=True).size / k
        seen[new] = True
        support[t] = int(seen.sum())
        winners[t] = new
        prev = new
    return Projection(n=n, k=k, p=syn.p, beta=float(beta), winners=winners, overlap=overlap, support=support)


@dataclass
class BetaSweep:
    """Final support (in units of k) and final overlap for each ``beta``, averaged over seeds."""

    betas: np.ndarray
    support_over_k: np.ndarray  # (len(betas), len(seeds))
    final_overlap: np.ndarray  # (len(betas), len(seeds))


def sweep_beta(n: int, k: int, p: float, betas, rounds: int, seeds=(0, 1, 2, 3, 4)) -> BetaSweep:
    """Run :func:`project` for every ``beta`` and seed; record support/k and last overlap."""
    betas = np.asarray(betas, dtype=float)
    if betas.ndim != 1 or betas.size == 0:
        raise ValueError("betas must be a non-empty 1-d sequence")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must be non-empty")
    sup = np.empty((betas.size, len(seeds)))
    ov = np.empty_like(sup)
    for i, b in enumerate(betas):
        for j, s in enumerate(seeds):
            r = project(n, k, p, float(b), rounds, seed=s)
            sup[i, j] = r.support[-1] / k
            ov[i, j] = r.overlap[-1]
    return BetaSweep(betas=betas, support_over_k=sup, final_overlap=ov)


# ---------------------------------------------------------------- plots


def plot_projection(results, title: str = ""):
    """Overlap of consecutive winner sets and total support / k against the round, one line per run."""
    from helpers import plotting

    if isinstance(results, Projection):
        results = [results]
    fig, (ax1, ax2) = plotting.subplots(1, 2, width=8.0, height=3.0)
    for r in results:
        t = np.arange(r.rounds)
        label = f"β = {r.beta:g}"
        ax1.plot(t[1:], r.overlap[1:], label=label)
        ax2.plot(t, r.support / r.k, label=label)
    ax1.set_xlabel("round t")
    ax1.set_ylabel("|W(t) ∩ W(t-1)| / k")  # plain text: mathtext doubles the frame's drawing time
    ax1.set_ylim(-0.03, 1.05)
    ax1.set_title("overlap with the previous round")
    ax2.set_xlabel("round t")
    ax2.set_ylabel("total support / k")
    ax2.set_title("neurons that ever fired")
    ax2.set_ylim(bottom=0)
    ax1.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    return fig


def plot_beta_sweep(sweep: BetaSweep):
    """Total support / k (mean and range over seeds) against the plasticity ``beta``."""
    from helpers import plotting

    fig, ax = plotting.subplots(1, 1, width=4.6, height=3.0)
    m = sweep.support_over_k.mean(axis=1)
    ax.fill_between(sweep.betas, sweep.support_over_k.min(axis=1), sweep.support_over_k.max(axis=1), alpha=0.25)
    ax.plot(sweep.betas, m, marker="o")
    ax.set_xlabel(r"plasticity $\beta$")
    ax.set_ylabel("total support / k")
    ax.set_title("support after the last round")
    ax.set_ylim(bottom=0)
    return fig


@widgets.register("ch11-assemblies")
def assembly_widget(n: int = 1000, k: int = 31, p: float = 0.05) -> widgets.Spec:
    """Sliders over beta and the number of rounds; overlap and support curves."""

    def compute(beta, rounds):
        return project(n, k, p, beta, rounds, seed=0)

    def plot(r):
        return plot_projection(r)

    return widgets.Spec(
        compute=compute,
        plot=plot,
        grid={"beta": [0.0, 0.02, 0.05, 0.1, 0.2, 0.5], "rounds": [5, 10, 20, 30]},
        default={"beta": 0.1, "rounds": 20},
        labels={"beta": "plasticity β", "rounds": "rounds"},
        title="Projection of a stimulus into an area: does an assembly form?",
    )
