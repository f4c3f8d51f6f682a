"""``data inspect``'s work: a summary of a data source as plain dicts (what ``--json`` prints).

Users, events per stream (with their most frequent values), time span, decision points and the rate
of every label at them. It labels the decision points the way training does, so it sits on the
features floor; printing stays in the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edgeintent.errors import DataError
from edgeintent.toolkit.data.dataset import Dataset
from edgeintent.toolkit.data.sources import load_source
from edgeintent.toolkit.features.spec import LABELS, LabelConfig
from edgeintent.toolkit.features.windows import label_decisions

#: the field whose most frequent values ``inspect`` lists per stream
TOP_FIELD = {"gesture": "kind", "click": "widget", "cloud": "action"}


def _horizon(ms: int) -> str:
    if ms % (24 * 3600 * 1000) == 0:
        return f"{ms // (24 * 3600 * 1000)} d"
    if ms % (3600 * 1000) == 0:
        return f"{ms // (3600 * 1000)} h"
    return f"{ms / 60000:g} min"


def _top(table: pa.Table, column: str, k: int = 8) -> dict[str, float]:
    col = table.column(column)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    counts = pc.value_counts(col).to_pylist()
    total = max(table.num_rows, 1)
    counts.sort(key=lambda c: (-c["counts"], str(c["values"])))
    return {str(c["values"]): c["counts"] / total for c in counts[:k]}


def label_defined(label: str, streams: Iterable[str]) -> bool:
    """Whether ``label`` can be computed from data with these streams: purchases are cloud events,
    stay is any event. (A defined label may still be unobserved at every decision point.)"""
    return label == "stay" or "cloud" in set(streams)


def inspect_dataset(ds: Dataset, labels: LabelConfig | None = None) -> dict:
    """Summary of a dataset: users, streams, time span, decision points and label rates.

    A label's ``rate`` is its mean over the decision points where it is observed (its horizon ends
    inside the data); it is None when the label is not defined (:func:`label_defined`) or observed at
    no decision point. ``observed`` is the share of decision points where it is observed.
    """
    log = ds.events
    labels = labels or LabelConfig()
    users = log.users()
    span = log.time_span() or (0, 0)
    streams = {}
    for s in log.present():
        t = log.stream(s)
        streams[s] = {
            "events": t.num_rows,
            "users": int(len(np.unique(t.column("user_id").to_numpy()))),
            "per_user": t.num_rows / max(len(users), 1),
            "top": _top(t, TOP_FIELD[s]),
        }
    if ds.decisions is None and "cloud" not in streams:
        raise DataError(f"{ds.name}: no cloud events and no decision points of its own; nothing to label")
    decisions, lab, observed = label_decisions(log, ds.decisions, labels)
    horizons = {"buy_rt": labels.rt_horizon_ms, "buy_long": labels.long_horizon_ms, "stay": labels.stay_horizon_ms,
                "browse_rt": labels.rt_horizon_ms, "engage_rt": labels.rt_horizon_ms,
                "buy_skips_cart_rt": labels.rt_horizon_ms}  # fmt: skip
    label_info = {}
    for name in LABELS:
        obs = observed[name]
        defined = label_defined(name, streams)
        label_info[name] = {
            "horizon": _horizon(horizons[name]),
            "rate": float(lab[name][obs].mean()) if defined and obs.any() else None,
            "observed": float(obs.mean()) if len(obs) else 0.0,
        }
    extra = {}
    for name in decisions.column_names:
        if name in ("user_id", "t_ms"):
            continue
        typ = decisions.schema.field(name).type
        if pa.types.is_string(typ) or pa.types.is_boolean(typ) or pa.types.is_dictionary(typ) or name == "offer":
            extra[name] = _top(decisions, name)
    return {
        "source": ds.name,
        "users": int(len(users)),
        "events": log.n_events,
        "time_span": {
            "start": datetime.fromtimestamp(span[0] / 1000, timezone.utc).isoformat(),
            "end": datetime.fromtimestamp(span[1] / 1000, timezone.utc).isoformat(),
            "days": (span[1] - span[0]) / 86_400_000,
        },
        "streams": streams,
        "decision_points": {
            "count": decisions.num_rows,
            "rule": "the source's own" if ds.decisions is not None else "right after every non-buy cloud event",
            "per_user": decisions.num_rows / max(len(users), 1),
            "labels": label_info,
            "columns": extra,
        },
        "read": log.report.to_dict(),
        "notes": list(dict.fromkeys(list(ds.meta.get("notes", [])) + list(log.report.notes))),
    }


def inspect_source(source: str) -> dict:
    """:func:`inspect_dataset` of a source spec (see :mod:`edgeintent.toolkit.data.sources`)."""
    return inspect_dataset(load_source(source))
