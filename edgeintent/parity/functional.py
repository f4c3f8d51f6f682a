"""Pure comparisons of an artifact's outputs with the reference: arrays in, floats out.

The parity gate and the quantization recipes' evaluation both judge outputs with these functions
(the functional core, as in torchmetrics' ``functional/``), so a number means the same in both.
"""

from __future__ import annotations

import numpy as np

#: decisions are "probability ≥ the reference probability's quantile q" on the recorded rows
DECISION_QUANTILES = (0.5, 0.8, 0.9)
#: decision thresholds sit in the widest gap within ±5 % of ranks of their quantile
THRESHOLD_WINDOW = 0.05


def finite(*arrays: np.ndarray) -> bool:
    return all(bool(np.isfinite(a).all()) for a in arrays)


def max_abs(ref: np.ndarray, got: np.ndarray) -> float:
    """Largest |got − ref|; ``inf`` when ``got`` has a non-finite value."""
    if not finite(got):
        return float("inf")
    with np.errstate(invalid="ignore"):
        return float(np.nanmax(np.abs(got - ref)))


def row_cosine(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """(n,) cosine similarity of each row of two (n, D) arrays (1.0 where both rows are zero)."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    dot = (ref * got).sum(-1)
    norm = np.linalg.norm(ref, axis=-1) * np.linalg.norm(got, axis=-1)
    both_zero = (norm == 0) & (np.abs(ref).sum(-1) == 0) & (np.abs(got).sum(-1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norm > 0, dot / np.where(norm > 0, norm, 1.0), 0.0)
    return np.where(both_zero, 1.0, cos)


def cosine_min(ref: np.ndarray, got: np.ndarray) -> float:
    """The lowest row cosine of two (n, D) embeddings; ``-inf`` when ``got`` has a non-finite value."""
    if not finite(got):
        return float("-inf")
    return float(row_cosine(ref, got).min(initial=1.0))


def spearman(ref: np.ndarray, got: np.ndarray) -> float:
    """Spearman correlation of two scorings (1.0 / 0.0 for identical / different constant scorings)."""
    from scipy.stats import spearmanr

    if np.std(ref) > 0 and np.std(got) > 0:
        return float(spearmanr(ref, got).statistic)
    return float(np.array_equal(ref, got))


def decision_thresholds(ref_prob: np.ndarray, all_prob: np.ndarray | None = None) -> np.ndarray:
    """Decision thresholds near DECISION_QUANTILES of ``ref_prob`` (the recorded rows), each in the
    middle of the widest gap between neighbouring probabilities of ``all_prob`` (every row whose
    decision is counted; default ``ref_prob``) within ±THRESHOLD_WINDOW of the quantile's rank.

    Not simply halfway between the quantile's two neighbours: when those happen to lie very close
    together, or an edge-case row sits right next to the threshold, a change far below the value
    bound flips a decision, and the zero-flip rule would fail on a near-tie of the sample rather
    than on a behaviour change. The widest nearby gap keeps each threshold at its quantile (±5 % of
    ranks) while a decision flips only when an output moves by more than half a real gap.
    """
    p = np.sort(ref_prob)
    if len(p) < 2:
        return np.array([0.5])
    every = np.sort(all_prob if all_prob is not None else ref_prob)
    w = max(1, int(round(THRESHOLD_WINDOW * len(p))))
    out = []
    for q in DECISION_QUANTILES:
        k0 = int(np.clip(q * (len(p) - 1), 0, len(p) - 2))
        lo, hi = p[max(0, k0 - w)], p[min(len(p) - 1, k0 + w + 1)]
        cand = every[(every >= lo) & (every <= hi)]
        if len(cand) < 2 or hi <= lo:
            out.append((p[k0] + p[k0 + 1]) / 2)
            continue
        k = int(np.argmax(np.diff(cand)))
        out.append((cand[k] + cand[k + 1]) / 2)
    return np.array(out)


def flip_share(ref_prob: np.ndarray, got_prob: np.ndarray, thresholds: np.ndarray) -> float:
    """Share of threshold decisions (row × threshold) that differ; a non-finite output always flips."""
    got = np.nan_to_num(got_prob, nan=-1)
    return float(np.mean([(got >= t) != (ref_prob >= t) for t in thresholds]))


def auc_delta(labels: np.ndarray, ref_score: np.ndarray, got_score: np.ndarray) -> float:
    """AUC(got) − AUC(ref) on the same labels (signed: negative when the artifact ranks worse)."""
    from edgeintent.toolkit.training.metrics import auc

    return float(auc(labels, got_score) - auc(labels, ref_score))
