"""The capability table: one row per export target with its quantization modes (``edgeintent targets``).

It joins the targets (``edgeintent.exporters``) and the quantization recipes, so it sits one floor
above both.
"""

from __future__ import annotations

from edgeintent.exporters import TARGETS
from edgeintent.quantization import UNQUANTIZABLE, recipes


def capability_table() -> list[dict]:
    rows = []
    for name, t in TARGETS.items():
        rows.append({
            "target": name, "extension": t.extension, "precisions": list(t.precisions),
            "dynamic_batch": t.dynamic_batch, "dynamic_length": t.dynamic_length,
            "quantization": [r.mode for r in recipes(name)], "quantization_refused": UNQUANTIZABLE.get(name, ""),
            "runtime": t.runtime,
            "exports_here": t.missing() is None, "runs_here": t.run_missing() is None,
            "why_not": t.run_missing() or "", "notes": t.notes,
        })  # fmt: skip
    return rows
