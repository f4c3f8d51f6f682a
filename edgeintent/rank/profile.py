"""The decayed interest profile: the per-user state that stays on the phone (reference implementation).

A profile is at most ``capacity`` slots ``(key, w, t_ms)``: a category (its vocabulary index), its
weight as of ``t_ms``, and that time. Weights cool by Newton's law, ``w(t) = w · e^{−α_k (t − t_k)}``,
``α_k = ln 2 / half_life_k`` (72 h unless the category has an override). Decay is *lazy*: a slot's
stored ``(w, t)`` is only rewritten when an event touches it, and its value at any later time is the
formula above, so every read (merge or scoring) sees the same weights an eager decay would.

Merging an event ``(t, key, v)`` (``v`` the action's weight):

1. the event's key is overridden with its decayed weight plus ``v``: ``w_key ← w_key(t) + v``,
   ``t_key ← t`` (a new key starts at ``v``);
2. every slot whose decayed weight at ``t`` is below ``threshold`` is dropped;
3. if more than ``capacity`` slots remain, the one with the smallest decayed weight is dropped
   (ties: the smaller key).

Every step reads each of the ≤ ``capacity + 1`` slots at most once, so one update costs O(capacity) = O(1) in the
length of the history (``benchmarks/ranking.py`` measures it at 10 … 10,000 past events).

Arithmetic is IEEE double with ``math.exp`` (libm), in the order written above; the golden trace in a
rank bundle (:func:`golden_trace`) records the states after every event so that an app's port can be
replayed against it (``tests/test_rank.py`` replays it bit for bit here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

HOUR_MS = 3_600_000
#: the weight an action carries into the profile (conversions count as several clicks)
ACTION_WEIGHT = {"view": 1.0, "fav": 2.0, "cart": 3.0, "buy": 3.0}
ACTIONS = ("view", "fav", "cart", "buy")


@dataclass(frozen=True)
class DecayRule:
    """How a profile decays and merges: rates per key, the drop threshold and the capacity."""

    alpha_per_ms: np.ndarray  # (V,) float64: ln 2 / half-life of each vocabulary index (index 0 = OOV)
    threshold: float = 0.05
    capacity: int = 64

    @classmethod
    def from_half_lives(cls, half_life_h: np.ndarray, threshold: float = 0.05, capacity: int = 64) -> DecayRule:
        hl = np.asarray(half_life_h, np.float64)
        return cls(math.log(2.0) / (hl * HOUR_MS), float(threshold), int(capacity))


@dataclass
class Profile:
    """One user's profile: ``slots`` maps key → ``[w, t_ms]`` (insertion order is irrelevant)."""

    rule: DecayRule
    slots: dict[int, list] = field(default_factory=dict)

    def weight(self, key: int, t_ms: int) -> float:
        """The decayed weight of ``key`` at ``t_ms`` (0 when absent)."""
        s = self.slots.get(key)
        if s is None:
            return 0.0
        return s[0] * math.exp(-float(self.rule.alpha_per_ms[key]) * float(t_ms - s[1]))

    def update(self, t_ms: int, key: int, v: float) -> None:
        """Merge one event (see the module docstring). ``key`` 0 (out of vocabulary) is ignored."""
        if key <= 0:
            return
        self.slots[key] = [self.weight(key, t_ms) + v, int(t_ms)]
        thr = self.rule.threshold
        for k in [k for k in self.slots if self.weight(k, t_ms) < thr]:
            del self.slots[k]
        while len(self.slots) > self.rule.capacity:
            k = min(self.slots, key=lambda k: (self.weight(k, t_ms), k))
            del self.slots[k]

    def arrays(self, t_ms: int | None = None, width: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(keys int64, w float64, t_ms int64)`` sorted by key, right-padded with key 0 to ``width``."""
        width = self.rule.capacity if width is None else width
        keys = np.zeros(width, np.int64)
        w = np.zeros(width, np.float64)
        t = np.zeros(width, np.int64)
        for i, k in enumerate(sorted(self.slots)[:width]):
            keys[i], w[i], t[i] = k, self.slots[k][0], self.slots[k][1]
        return keys, w, t

    def nbytes(self) -> int:
        """Bytes of the state as an app stores it: per slot an int32 key, a float64 weight, an int64 time."""
        return len(self.slots) * (4 + 8 + 8)


def replay(rule: DecayRule, ts_ms: np.ndarray, keys: np.ndarray, weights: np.ndarray) -> Profile:
    """A fresh profile after merging the events in order."""
    p = Profile(rule)
    for t, k, v in zip(ts_ms.tolist(), keys.tolist(), weights.tolist(), strict=True):
        p.update(t, k, v)
    return p


def golden_trace(rule: DecayRule, users: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Events → profile states after every event, for a few users (the bundle's ``trace_*`` arrays).

    ``users`` holds per user ``(ts_ms, keys, weights)``; the trace concatenates them with
    ``trace_start`` marking where each user's events begin (the profile restarts empty there).
    """
    ts, ks, vs, starts, skey, sw, st = [], [], [], [], [], [], []
    n = 0
    for t_arr, k_arr, v_arr in users:
        starts.append(n)
        p = Profile(rule)
        for t, k, v in zip(t_arr.tolist(), k_arr.tolist(), v_arr.tolist(), strict=True):
            p.update(t, k, v)
            a, b, c = p.arrays()
            skey.append(a), sw.append(b), st.append(c)
        ts.append(t_arr), ks.append(k_arr), vs.append(v_arr)
        n += len(t_arr)
    return {
        "trace_ts_ms": np.concatenate(ts).astype(np.int64),
        "trace_key": np.concatenate(ks).astype(np.int64),
        "trace_value": np.concatenate(vs).astype(np.float64),
        "trace_start": np.asarray(starts, np.int64),
        "trace_state_key": np.stack(skey).astype(np.int64),
        "trace_state_w": np.stack(sw).astype(np.float64),
        "trace_state_t": np.stack(st).astype(np.int64),
    }


def replay_trace(rule: DecayRule, trace: dict[str, np.ndarray]) -> list[str]:
    """Replay a golden trace with this implementation; the list of mismatches (empty: bit for bit)."""
    bad = []
    starts = set(trace["trace_start"].tolist())
    p = Profile(rule)
    for i, (t, k, v) in enumerate(zip(trace["trace_ts_ms"].tolist(), trace["trace_key"].tolist(),
                                      trace["trace_value"].tolist(), strict=True)):  # fmt: skip
        if i in starts:
            p = Profile(rule)
        p.update(t, k, v)
        a, b, c = p.arrays()
        if not (np.array_equal(a, trace["trace_state_key"][i]) and np.array_equal(c, trace["trace_state_t"][i])
                and b.tobytes() == trace["trace_state_w"][i].tobytes()):  # fmt: skip
            bad.append(f"event {i}: state differs")
    return bad
