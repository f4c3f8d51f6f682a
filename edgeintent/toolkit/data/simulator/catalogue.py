"""The item catalogue: category popularity, category ids and prices (one catalogue per seed)."""

from __future__ import annotations

import math

import numpy as np

from edgeintent.toolkit.data.simulator.parameters import N_CATEGORIES


def make_catalogue(seed: int) -> dict[str, np.ndarray]:
    """Category popularity and prices: one catalogue per seed, shared by all blocks."""
    rng = np.random.default_rng([seed, 0, 0xCA7A])
    ranks = np.arange(1, N_CATEGORIES + 1, dtype=np.float64)
    pop = ranks**-1.05
    pop = rng.permutation(pop / pop.sum())
    cat_price = np.exp(rng.normal(math.log(45.0), 0.9, N_CATEGORIES))
    return {"pop": pop, "cum": np.cumsum(pop), "price": cat_price, "ids": rng.permutation(N_CATEGORIES) * 7 + 1000}


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 (wrapping arithmetic)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x


def item_price(item_id: np.ndarray, cat_idx: np.ndarray, catalogue: dict[str, np.ndarray]) -> np.ndarray:
    """A fixed price per item: its category's price times ``exp(1.2 (u - 0.5))``, ``u`` in [0, 1) hashed from the item id."""
    u = (_mix64(item_id) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    price = catalogue["price"][cat_idx] * np.exp(1.2 * (u - 0.5))
    return np.maximum(np.round(price, 2), 0.01)
