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


def predict_by_amount(model, samples: Samples, amounts, idx: np.ndarray | None = None,
                      share_streams: bool = True) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """``(P, S)``: purchase probability (n, K) under each amount and stay probability (n,) without a coupon.

    One forward pass per amount. A model whose coupon joins after the stream encoders (``stream_parts``
    and ``forward_with_parts``, as iidn) encodes each batch's streams once and runs only the rest per
    amount (``share_streams``; the same batches and operations, so the same bytes as separate passes).
    S is read at amount 0 (the stay intent before any offer); ``None`` when the model has no stay task.
    """
    from edgeintent.toolkit.models.exportable import predict_logits, sigmoid

    buy, stay = tasks_of(model)
    idx = np.arange(len(samples)) if idx is None else np.asarray(idx)
    if share_streams and hasattr(model, "stream_parts") and hasattr(model, "forward_with_parts"):
        logits_by_amount = _logits_sharing_streams(model, [with_offer(samples, a) for a in amounts], idx)
    else:
        logits_by_amount = [predict_logits(model, with_offer(samples, a), idx) for a in amounts]
    cols, s = [], None
    for j, logits in enumerate(logits_by_amount):
        cols.append(sigmoid(logits[buy].astype(np.float64)))
        if j == 0 and stay is not None:
            s = sigmoid(logits[stay].astype(np.float64))
    return np.stack(cols, axis=1), s


def _logits_sharing_streams(model, offered: list[Samples], idx: np.ndarray, batch_size: int = 2048) -> list[dict[str, np.ndarray]]:
    """``predict_logits`` of each of ``offered`` (the same samples under different coupons) with the stream
    encoders run once per batch of ``batch_size`` rows (``predict_logits``' batches)."""
    import torch

    from edgeintent.toolkit.models.exportable import batch_for

    model.eval()
    parts: list[dict[str, list[np.ndarray]]] = [{t: [] for t in model.tasks} for _ in offered]
    with torch.inference_mode():
        for lo in range(0, len(idx), batch_size):
            rows = idx[lo : lo + batch_size]
            batches = [batch_for(model, samples, rows) for samples in offered]
            streams = model.stream_parts(batches[0])
            for j, batch in enumerate(batches):
                out = model.forward_with_parts(batch, streams)
                for t in model.tasks:
                    parts[j][t].append(out[t].float().numpy())
    return [{t: np.concatenate(v) if v else np.empty(0, np.float32) for t, v in p.items()} for p in parts]
