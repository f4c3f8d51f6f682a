"""The golden set: recorded, realistic windows plus edge cases, with the torch reference outputs.

Built once when a bundle is trained (:func:`build_golden`) and stored in the bundle as ``golden.npz``
(arrays, no pickle): ``case`` (the kind of each row: ``recorded``, ``empty``, ``length1_<stream>``,
``max_length``, ``long_gaps``, ``unknown_ids``), ``coupon``, per stream ``x_<s>`` / ``len_<s>`` /
``age_<s>``, per task ``logit_<t>`` / ``prob_<t>`` and ``label_<t>`` (−1 where unobserved or an edge
case), and each vector output of the signature (e.g. ``embedding``, (n, D)) under its own name. The test cases travel with the model, as in ExecuTorch's bundled programs, so any runtime can
replay them: :class:`GoldenSet` is the suite, :class:`GoldenCase` one case of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from edgeintent.toolkit.features import FeatureSpec, Samples


def golden_inputs(spec: FeatureSpec, samples: Samples, idx: np.ndarray, streams: tuple[str, ...], rows: int, seed: int) -> tuple[Samples, np.ndarray]:
    """Recorded validation windows plus edge cases, as full-width Samples and a case name per row.

    Edge cases: every stream empty, each stream alone at length 1, every stream at max length (the
    longest recorded windows, tiled if needed), long gaps (the highest gap bucket everywhere), and
    unknown ids (id 1 in every feature).
    """
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(idx, size=min(rows, len(idx)), replace=False))
    rec = samples.take(pick)
    cases = ["recorded"] * len(pick)
    base = samples.take(pick[:1])

    def variant(case: str, fn) -> None:
        nonlocal rec
        v = samples.take(pick[:1])
        for s in streams:
            fn(s, v)
        rec = _concat_samples(rec, v)
        cases.append(case)

    def empty(s, v):
        v.x[s][:] = 0
        v.length[s][:] = 0

    variant("empty", empty)
    for only in streams:
        def one(s, v, only=only):
            if s == only:
                v.x[s][:, 1:] = 0
                v.x[s][:, 0] = np.maximum(base.x[s][:, 0], 1)
                v.length[s][:] = 1
            else:
                empty(s, v)
        variant(f"length1_{only}", one)

    def full(s, v):
        row = samples.length[s][idx].argmax()
        src = samples.x[s][idx[row]]
        n = max(int(samples.length[s][idx[row]]), 1)
        tiled = np.resize(src[:n], (spec.max_len[s], src.shape[1]))
        v.x[s][0] = np.maximum(tiled, 1)
        v.length[s][:] = spec.max_len[s]
        ages = samples.age_ms[s][idx[row]][:n]
        # older copies first, so ages still decrease along the window
        reps = -(-spec.max_len[s] // n)
        v.age_ms[s][0] = (np.concatenate([ages + k * 3_600_000 for k in range(reps - 1, -1, -1)]))[-spec.max_len[s]:]

    variant("max_length", full)

    def long_gap(s, v):
        gap_col = [f.name for f in spec.features[s]].index("gap")
        n = int(v.length[s][0])
        v.x[s][0, :n, gap_col] = spec.features[s][gap_col].cardinality - 1

    variant("long_gaps", long_gap)

    def unknown(s, v):
        n = int(v.length[s][0])
        v.x[s][0, :n, :] = 1

    variant("unknown_ids", unknown)
    return rec, np.array(cases)


def _concat_samples(a: Samples, b: Samples) -> Samples:
    return Samples(
        user_id=np.concatenate([a.user_id, b.user_id]),
        t_ms=np.concatenate([a.t_ms, b.t_ms]),
        x={s: np.concatenate([a.x[s], b.x[s]]) for s in a.x},
        length={s: np.concatenate([a.length[s], b.length[s]]) for s in a.length},
        age_ms={s: np.concatenate([a.age_ms[s], b.age_ms[s]]) for s in a.age_ms},
        labels={k: np.concatenate([a.labels[k], b.labels[k]]) for k in a.labels},
        observed={k: np.concatenate([a.observed[k], b.observed[k]]) for k in a.observed},
        extra=None if a.extra is None else pa.concat_tables([a.extra, b.extra]),
    )


def build_golden(model, spec: FeatureSpec, samples: Samples, idx: np.ndarray, rows: int, seed: int) -> dict[str, np.ndarray]:
    """The golden arrays of a trained ``model``: inputs (full width, as the phone sends them) drawn from
    ``samples[idx]`` plus the edge cases, and the model's reference outputs, for parity checks."""
    from edgeintent.toolkit.models.base import coupon_values
    from edgeintent.toolkit.models.exportable import predict_embeddings, predict_logits, sigmoid

    streams = tuple(model.streams)
    g, cases = golden_inputs(spec, samples, idx, streams, rows, seed)
    logits = predict_logits(model, g)
    out: dict[str, np.ndarray] = {"case": cases.astype("U32")}
    out["coupon"] = coupon_values(g)
    for s in streams:
        out[f"x_{s}"] = g.x[s].astype(np.int64)
        out[f"len_{s}"] = g.length[s].astype(np.int64)
        out[f"age_{s}"] = g.age_ms[s].astype(np.int64)
    for t, v in logits.items():
        out[f"logit_{t}"] = v.astype(np.float32)
        out[f"prob_{t}"] = sigmoid(v).astype(np.float32)
        if t in g.labels:  # parity's AUC delta; -1 where unobserved or an edge case
            known = g.observed[t] & (cases == "recorded")
            out[f"label_{t}"] = np.where(known, g.labels[t], -1).astype(np.int8)
    for name, v in predict_embeddings(model, g).items():
        out[name] = v.astype(np.float32)
    return out




def golden_samples(golden: dict[str, np.ndarray]) -> Samples:
    """The golden set's inputs as Samples (what parity and reloading checks replay)."""
    streams = [k[2:] for k in golden if k.startswith("x_")]
    n = len(golden["case"])
    return Samples(
        user_id=np.zeros(n, np.int64),
        t_ms=np.zeros(n, np.int64),
        x={s: golden[f"x_{s}"] for s in streams},
        length={s: golden[f"len_{s}"] for s in streams},
        age_ms={s: golden[f"age_{s}"] for s in streams},
        labels={},
        observed={},
        extra=pa.table({"offer": golden["coupon"].astype(np.float64)}),
    )


@dataclass(frozen=True)
class GoldenCase:
    """One golden row: its kind, its inputs (one-row Samples), the reference outputs and labels."""

    index: int
    kind: str
    inputs: Samples
    expected: dict[str, float | list[float]]  # output name → reference value (a list for a vector output)
    labels: dict[str, int]  # task → 0/1, or −1 when unobserved


@dataclass(frozen=True)
class GoldenSet:
    """The golden suite of a bundle, over its stored arrays (see the module docstring)."""

    arrays: dict[str, np.ndarray]

    @classmethod
    def of(cls, bundle) -> GoldenSet:
        return cls(bundle.golden)

    def __len__(self) -> int:
        return int(len(self.arrays["case"]))

    @property
    def kinds(self) -> np.ndarray:
        return self.arrays["case"]

    @property
    def recorded(self) -> np.ndarray:
        """(n,) bool: rows recorded from real windows (not edge cases)."""
        return self.kinds == "recorded"

    @property
    def samples(self) -> Samples:
        return golden_samples(self.arrays)

    @property
    def outputs(self) -> list[str]:
        return [k for k in self.arrays if k.startswith(("prob_", "logit_")) or k in self.embeddings]

    @property
    def embeddings(self) -> list[str]:
        """The vector outputs recorded (2-d float arrays other than inputs and labels)."""
        skip = ("x_", "len_", "age_", "label_")
        return [k for k, v in self.arrays.items() if v.ndim == 2 and v.dtype.kind == "f" and not k.startswith(skip)]

    def reference(self, output: str) -> np.ndarray:
        return self.arrays[output]

    def labels(self, task: str) -> np.ndarray | None:
        return self.arrays.get(f"label_{task}")

    def case(self, i: int) -> GoldenCase:
        tasks = [k[6:] for k in self.arrays if k.startswith("label_")]
        return GoldenCase(int(i), str(self.kinds[i]), self.samples.take(np.array([i])),
                          {o: self.arrays[o][i].tolist() if self.arrays[o].ndim == 2 else float(self.arrays[o][i])
                           for o in self.outputs},
                          {t: int(self.arrays[f"label_{t}"][i]) for t in tasks})  # fmt: skip

    def __iter__(self) -> Iterator[GoldenCase]:
        return (self.case(i) for i in range(len(self)))
