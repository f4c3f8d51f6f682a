"""The on-device decision rule: the phone decides locally from the model's outputs.

The batch solver (``allocation``) prices the budget at λ*. Written into the bundle as
``decision.json`` (with γ, the amounts and the objective), that price is all a phone needs: it runs
the model once per amount, reads the purchase probabilities ``p[j]`` and the stay probability ``s``
(at amount 0) and takes::

    j* = 0                                   if s ≥ γ   (and γ < 1)
    j* = argmax_j  gain_j(p) − λ·c_j         otherwise; ties go to the cheaper amount

with ``gain_j`` the objective's gain (``allocation.gains``). That is the Lagrangian choice the batch
solver makes for every user except the few at the budget boundary (the break segment, exact ties at
λ*, and the greedy fill), so the two agree for all but a handful of users (``parity``).

``decide`` is plain Python on purpose (no numpy): it is the reference a phone port copies line by
line. ``decide_batch`` is the same arithmetic vectorised, for measuring parity on many users.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeintent.decide.allocation import Allocation, check_amounts, check_objective
from edgeintent.errors import BundleError, ConfigError

RULE_FILE = "decision.json"
RULE_FORMAT = "edgeintent-decision"
RULE_VERSION = 1


@dataclass(frozen=True)
class DecisionRule:
    lam: float
    gamma: float
    amounts: tuple[float, ...]
    objective: str = "incremental"
    order_value: float = 1.0
    purchase_task: str = "buy_rt"
    stay_task: str | None = "stay"
    #: where the rule came from: data, decision points, budget, spend (informational)
    solved_on: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "amounts", tuple(float(a) for a in check_amounts(self.amounts)))
        check_objective(self.objective)
        if not (math.isfinite(self.lam) and self.lam >= 0.0):
            raise ConfigError(f"decision rule: lambda must be a non-negative number, got {self.lam}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"decision rule: gamma must be in [0, 1], got {self.gamma}")
        if not (math.isfinite(self.order_value) and self.order_value >= 0.0):
            raise ConfigError(f"decision rule: order_value must be a non-negative number, got {self.order_value}")
        if self.gamma < 1.0 and self.stay_task is None:
            raise ConfigError("decision rule: gamma < 1 needs a stay task")

    def to_json(self) -> dict:
        d = asdict(self)
        lam = d.pop("lam")
        return {"format": RULE_FORMAT, "version": RULE_VERSION, "lambda": lam, **d,
                "tie_break": "cheaper amount", "stay_read_at_amount": 0.0}  # fmt: skip

    @classmethod
    def from_json(cls, d: Mapping, source: str = RULE_FILE) -> DecisionRule:
        if not isinstance(d, Mapping) or d.get("format") != RULE_FORMAT:
            raise BundleError(f"{source}: not an edgeintent decision rule")
        if d.get("version") != RULE_VERSION:
            raise BundleError(f"{source}: decision rule version {d.get('version')!r}, this edgeintent reads {RULE_VERSION}")
        try:
            return cls(lam=float(d["lambda"]), gamma=float(d["gamma"]), amounts=tuple(d["amounts"]),
                       objective=str(d["objective"]), order_value=float(d["order_value"]),
                       purchase_task=str(d["purchase_task"]), stay_task=d.get("stay_task"),
                       solved_on=dict(d.get("solved_on") or {}))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{source}: malformed decision rule ({exc.__class__.__name__}: {exc})") from None
        except ConfigError as exc:
            raise BundleError(f"{source}: {exc}") from None


def rule_from_allocation(alloc: Allocation, order_value: float = 1.0, purchase_task: str = "buy_rt",
                         stay_task: str | None = "stay", solved_on: Mapping | None = None) -> DecisionRule:  # fmt: skip
    return DecisionRule(lam=alloc.lam, gamma=alloc.gamma, amounts=alloc.amounts, objective=alloc.objective,
                        order_value=float(order_value), purchase_task=purchase_task,
                        stay_task=stay_task,
                        solved_on=dict(solved_on or {}))  # fmt: skip


def _gain(objective: str, p: Sequence[float], j: int, cost: float, order_value: float) -> float:
    if objective == "purchases":
        return p[j] if j else 0.0
    if objective == "incremental":
        return p[j] - p[0]
    return order_value * (p[j] - p[0]) - cost * p[j]


def decide(rule: DecisionRule, p: Sequence[float], stay: float | None = None) -> int:
    """Index into ``rule.amounts`` of the coupon for one user, from the model's outputs.

    ``p[j]``: purchase probability with amount ``rule.amounts[j]`` offered; ``stay``: stay probability
    (with no coupon). Pure Python: this is the function a phone port mirrors.
    """
    amounts = rule.amounts
    if len(p) != len(amounts):
        raise ConfigError(f"decide: {len(p)} purchase probabilities for {len(amounts)} amounts")
    if rule.gamma < 1.0:
        if stay is None:
            raise ConfigError("decide: the rule has gamma < 1, so it needs the stay probability")
        if not stay < rule.gamma:
            return 0
    best, best_v = 0, _gain(rule.objective, p, 0, amounts[0], rule.order_value)
    for j in range(1, len(amounts)):
        v = _gain(rule.objective, p, j, amounts[j], rule.order_value) - rule.lam * amounts[j]
        if v > best_v:  # strictly: a tie keeps the cheaper amount
            best, best_v = j, v
    return best


def decide_batch(rule: DecisionRule, p: np.ndarray, stay: np.ndarray | None = None) -> np.ndarray:
    """``decide`` for many users at once (the same arithmetic, in float64)."""
    p = np.asarray(p, dtype=np.float64)
    a = rule.amounts
    n = p.shape[0]
    best = np.zeros(n, dtype=np.int64)
    best_v = np.zeros(n)  # the gain of "no coupon" is 0 under every objective
    for j in range(1, len(a)):
        if rule.objective == "purchases":
            g = p[:, j]
        elif rule.objective == "incremental":
            g = p[:, j] - p[:, 0]
        else:
            g = rule.order_value * (p[:, j] - p[:, 0]) - a[j] * p[:, j]
        v = g - rule.lam * a[j]
        better = v > best_v
        best[better] = j
        best_v = np.where(better, v, best_v)
    if rule.gamma < 1.0:
        if stay is None:
            raise ConfigError("decide: the rule has gamma < 1, so it needs the stay probabilities")
        best[~(np.asarray(stay, dtype=np.float64) < rule.gamma)] = 0
    return best


def parity(rule: DecisionRule, p: np.ndarray, stay: np.ndarray | None, choice: np.ndarray) -> float:
    """Share of users for whom the on-device rule picks the batch solver's amount."""
    got = decide_batch(rule, p, stay)
    return float((got == np.asarray(choice)).mean()) if got.size else 1.0


def write_rule(bundle: str | Path, rule: DecisionRule) -> None:
    """Write ``decision.json`` into a bundle (verified first; the manifest is updated)."""
    from edgeintent.io import canonical_json
    from edgeintent.toolkit.bundle import add_files

    add_files(bundle, {RULE_FILE: canonical_json(rule.to_json(), f"{bundle}: {RULE_FILE}")})


def read_rule(bundle: str | Path) -> DecisionRule:
    """The decision rule of a verified bundle."""
    from edgeintent.toolkit.bundle import verify_bundle

    manifest = verify_bundle(bundle)
    if RULE_FILE not in manifest["files"]:
        raise BundleError(f"{bundle}: no {RULE_FILE}; run `edgeintent allocate --bundle {bundle} ...` first")
    try:
        data = json.loads((Path(bundle) / RULE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{bundle}/{RULE_FILE}: unreadable ({exc})") from None
    return DecisionRule.from_json(data, f"{bundle}/{RULE_FILE}")
