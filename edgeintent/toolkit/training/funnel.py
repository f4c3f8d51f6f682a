"""Per-step evaluation of a conversion funnel (``features.FUNNEL``): a pure function, arrays in, dict out.

For each step k of a funnel model's tasks (upstream first):

- ``auc`` / ``auc_ci``: AUC on every decision point whose label is observed (the entire space),
  bootstrap 95 % CI over users;
- ``auc_given_prev`` / ``auc_given_prev_ci`` (k ≥ 2): AUC on the rows that reached step k−1
  (y_{k−1} = 1), i.e. how well the model ranks conversions among the converted;
- ``ece`` and ``mean_p`` against ``rate``: calibration;
- ``violation`` (k ≥ 2): the share of rows where p_k > p_{k−1}, which a funnel forbids (compared on
  the logits, which order rows exactly as the probabilities do without saturating).

``order_breaks``: decision points whose raw events broke the funnel's order (a purchase within the
horizon with no add-to-cart between t and it; the cumulative labels count them as engaged).
"""

from __future__ import annotations

import numpy as np

from edgeintent.toolkit.models.exportable import sigmoid
from edgeintent.toolkit.training import metrics as M

#: the label that marks rows whose raw events skipped a step (see ``features.windows``)
BREAK_LABEL = "buy_skips_cart_rt"


def funnel_report(
    tasks: tuple[str, ...],
    labels: dict[str, np.ndarray],
    observed: dict[str, np.ndarray],
    logits: dict[str, np.ndarray],
    groups: np.ndarray | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> dict:
    """Per-step metrics (see the module docstring) over rows whose labels are given (already selected)."""
    steps = []
    for k, t in enumerate(tasks):
        obs = np.asarray(observed[t], bool)
        y, p = np.asarray(labels[t])[obs], sigmoid(np.asarray(logits[t], np.float64))
        g = None if groups is None else np.asarray(groups)[obs]
        lo, hi = M.bootstrap_ci(M.auc, y, p[obs], n_boot=n_boot, seed=seed, groups=g)
        row = {"task": t, "n": int(obs.sum()), "rate": M.positive_rate(y), "mean_p": float(p[obs].mean()) if obs.any() else M.NAN,
               "auc": M.auc(y, p[obs]), "auc_ci": [lo, hi], "ece": M.ece(y, p[obs]) if obs.any() else M.NAN}  # fmt: skip
        if k > 0:
            prev = tasks[k - 1]
            sel = obs & np.asarray(observed[prev], bool) & (np.asarray(labels[prev]) == 1)
            gs = None if groups is None else np.asarray(groups)[sel]
            ys = np.asarray(labels[t])[sel]
            row["n_given_prev"] = int(sel.sum())
            row["auc_given_prev"] = M.auc(ys, p[sel])
            row["auc_given_prev_ci"] = list(M.bootstrap_ci(M.auc, ys, p[sel], n_boot=n_boot, seed=seed, groups=gs))
            row["violation"] = float(np.mean(np.asarray(logits[t]) > np.asarray(logits[prev]))) if len(p) else M.NAN
        steps.append(row)
    out: dict = {"steps": steps}
    if BREAK_LABEL in labels and "buy_rt" in tasks:
        breaks = np.asarray(labels[BREAK_LABEL])
        out["order_breaks"] = {"label": BREAK_LABEL, "rows": int(breaks.sum()), "of": int(len(breaks)),
                               "buy_rows": int(np.asarray(labels["buy_rt"]).sum())}  # fmt: skip
    return out
