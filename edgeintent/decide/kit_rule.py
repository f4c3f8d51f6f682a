"""The phone kit's decision rule (``kit_decide`` in C) against :func:`~edgeintent.decide.rule.decide`.

``edgeintent parity`` adds a ``decision`` row for the ``kit`` target when the bundle has a
``decision.json``: the kit's runner, built for the parity device (host, or aarch64 under qemu), decides
for a fixed set of probability vectors, and every choice must be the Python rule's. The vectors are
random purchase and stay probabilities plus the cases where the rule's arithmetic is decided by a
tie or a boundary: all amounts equally good, two amounts tied after their price, stay exactly at γ and
one ulp below it, and probabilities of 0 and 1.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from edgeintent.decide.rule import RULE_FILE, DecisionRule, decide, read_rule
from edgeintent.kit.native import OBJECTIVES

ROWS = 2000


def rule_vectors(rule: DecisionRule, rows: int = ROWS, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(p (rows × amounts), stay (rows,), the kind of each row)."""
    rng = np.random.default_rng(seed)
    n = len(rule.amounts)
    p, stay = rng.random((rows, n)), rng.random(rows)
    kinds = ["random"] * rows
    q = rows // 10

    def mark(lo: int, hi: int, kind: str) -> None:
        kinds[lo:hi] = [kind] * (hi - lo)

    p[:q] = p[:q, :1]
    mark(0, q, "all_amounts_tied")
    if n > 2:
        p[q : 2 * q, 2] = p[q : 2 * q, 1] + rule.lam * (rule.amounts[2] - rule.amounts[1])
        mark(q, 2 * q, "tied_after_price")
    stay[2 * q : 3 * q] = rule.gamma
    stay[3 * q : 4 * q] = math.nextafter(rule.gamma, -math.inf)
    mark(2 * q, 3 * q, "stay_at_gamma")
    mark(3 * q, 4 * q, "stay_below_gamma")
    p[4 * q : 5 * q] = np.round(p[4 * q : 5 * q])
    mark(4 * q, 5 * q, "p_0_or_1")
    return p, stay, kinds


def rules_bytes(rule: DecisionRule, p: np.ndarray, stay: np.ndarray) -> bytes:
    """The runner's ``--decide`` input (format in ``kit/c/kit_conform.c``)."""
    n = len(rule.amounts)
    head = b"EIKD" + struct.pack(f"<I3dII{n}d", 1, rule.lam, rule.gamma, rule.order_value, OBJECTIVES[rule.objective],
                                 n, *rule.amounts)  # fmt: skip
    rows = np.concatenate([stay[:, None], p], axis=1).astype("<f8")
    return head + struct.pack("<I", len(stay)) + rows.tobytes()


def check_kit_rule(bundle_dir, device: str = "host") -> list[dict]:
    """One result (``stream`` "decision") comparing the exported kit's rule with the Python rule, or
    none when the bundle has no decision rule or no exported kit."""
    from edgeintent.exporters import exported_artifacts
    from edgeintent.exporters.kit import kit_arch
    from edgeintent.kit.build import machine, runtime_label
    from edgeintent.kit.conformance import run_decide
    from edgeintent.toolkit.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    metas = exported_artifacts(bundle, ["kit"])
    if RULE_FILE not in bundle.manifest["files"] or not metas:
        return []
    rule = read_rule(bundle_dir)
    arch = kit_arch(device)
    p, stay, kinds = rule_vectors(rule)
    want = np.array([decide(rule, list(p[i]), float(stay[i])) for i in range(len(stay))])
    got = run_decide(Path(bundle.path) / metas[0].artifact, rules_bytes(rule, p, stay), arch)
    bad = np.flatnonzero(got != want) if len(got) == len(want) else np.arange(len(want))
    reasons = []
    if len(bad):
        r = int(bad[0])
        g = int(got[r]) if r < len(got) else "nothing"
        more = f" (+{len(bad) - 1} more rows differ)" if len(bad) > 1 else ""
        reasons.append(f"decision, row {r} ({kinds[r]}): kit chose amount index {g}, python {int(want[r])}{more}")
    return [{"stream": "decision", "output": "decision", "rows": len(want), "passed": not reasons, "reasons": reasons,
             "runtime": runtime_label(arch), "arch": machine(arch),
             "metrics": {"rows": len(want), "rows_differ": int(len(bad)), "ids_differ": 0, "lengths_differ": 0,
                         "ages_differ": 0, "errors": 0}}]  # fmt: skip
