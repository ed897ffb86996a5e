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


def project(n: int, k: int, p: float, beta: float, rounds: int, seed=0) -> Projection:
    """Project a fixed stimulus of ``k`` neurons into an area of ``n`` neurons for ``rounds`` rounds.

    Explicit G(n, p) synapses, k-cap, Hebbian factor ``1 + beta`` (Papadimitriou & Vempala 2019).
    """
    _check(n, k, p, beta, rounds)
    stim, rec, priority = random_synapses(n, k, p, seed)
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
