"""Vectorised draws and group arithmetic the generator is built from (one call, one draw per row)."""

from __future__ import annotations

import numpy as np

from edgeintent.toolkit.data.simulator.parameters import TRANSITION


def draw(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (n, K) table of cumulative probabilities."""
    u = rng.random(cum.shape[0])
    idx = (u[:, None] >= cum).sum(axis=1)
    return np.minimum(idx, cum.shape[1] - 1)


def cum(p: np.ndarray) -> np.ndarray:
    """Row-wise cumulative probabilities, normalised, with the last column exactly 1."""
    p = np.asarray(p, dtype=np.float64)
    cum = np.cumsum(p / p.sum(axis=-1, keepdims=True), axis=-1)
    cum[..., -1] = 1.0
    return cum


def group_starts(counts: np.ndarray) -> np.ndarray:
    """Index of the first element of each contiguous group of ``counts`` elements."""
    return np.cumsum(counts) - counts


def exclusive_cumsum_by_group(values: np.ndarray, group_counts: np.ndarray) -> np.ndarray:
    """Exclusive cumulative sum of ``values`` restarting at each group (groups are contiguous)."""
    cs = np.cumsum(values)
    ex = cs - values
    starts = group_starts(group_counts)
    base = np.repeat(ex[starts[group_counts > 0]], group_counts[group_counts > 0])
    return ex - base


def markov(rng: np.random.Generator, start: np.ndarray, n_steps: int) -> np.ndarray:
    """(n, n_steps) chain continuing from ``start`` (the state before column 0)."""
    table = cum(TRANSITION)
    out = np.empty((start.size, n_steps), dtype=np.int8)
    prev = start
    for k in range(n_steps):
        prev = draw(rng, table[prev]).astype(np.int8)
        out[:, k] = prev
    return out
