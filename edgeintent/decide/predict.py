"""The model's outputs under every coupon amount: purchase ``P[i, j]`` and stay ``S[i]`` per decision point."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from edgeintent.errors import ConfigError
from edgeintent.toolkit.features import Samples

STAY_TASK = "stay"


def tasks_of(model) -> tuple[str, str | None]:
    """(purchase task, stay task or None) of a model: ``buy_rt`` when it has it, ``stay`` when it has it."""
    tasks = tuple(model.tasks)
    buy = [t for t in tasks if t != STAY_TASK]
    if not buy:
        raise ConfigError(f"model {getattr(model, 'registry_name', '?')} predicts no purchase task (tasks {list(tasks)})")
    return ("buy_rt" if "buy_rt" in buy else buy[0]), (STAY_TASK if STAY_TASK in tasks else None)


def with_offer(samples: Samples, amount: float) -> Samples:
    """``samples`` with the coupon offered at every decision point set to ``amount``."""
    col = pa.array(np.full(len(samples), float(amount)), pa.float64())
    extra = samples.extra
    if extra is None:
        extra = pa.table({"offer": col})
    elif "offer" in extra.column_names:
        extra = extra.set_column(extra.column_names.index("offer"), "offer", col)
    else:
        extra = extra.append_column("offer", col)
    return Samples(samples.user_id, samples.t_ms, samples.x, samples.length, samples.age_ms, samples.labels,
                   samples.observed, extra)  # fmt: skip


def predict_by_amount(model, samples: Samples, amounts, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(P, S)``: purchase probability (n, K) under each amount and stay probability (n,) without a coupon.

    One forward pass per amount. S is read at amount 0 (the stay intent before any offer); ``None``
    when the model has no stay task.
    """
    from edgeintent.toolkit.models.exportable import predict_logits, sigmoid

    buy, stay = tasks_of(model)
    idx = np.arange(len(samples)) if idx is None else np.asarray(idx)
    cols, s = [], None
    for j, a in enumerate(amounts):
        logits = predict_logits(model, with_offer(samples, a), idx)
        cols.append(sigmoid(logits[buy].astype(np.float64)))
        if j == 0 and stay is not None:
            s = sigmoid(logits[stay].astype(np.float64))
    return np.stack(cols, axis=1), s
