"""Stage glue behind ``edgeintent allocate`` and ``edgeintent policy-eval`` (plain dicts out, no printing)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from edgeintent.decide.allocation import allocate, check_amounts, check_objective
from edgeintent.decide.policy import PolicyInputs, evaluate_policies, outcomes_from_decisions, plot_budget_uplift, ratios
from edgeintent.decide.predict import predict_by_amount, tasks_of
from edgeintent.decide.rule import RULE_FILE, decide_batch, rule_from_allocation, write_rule
from edgeintent.errors import ConfigError
from edgeintent.io import ensure_parent

#: Default budgets of ``policy-eval``: per decision point (give-all spends exactly 5, 10 and 20 of them).
DEFAULT_BUDGETS_PER_POINT = (2.5, 5.0, 10.0)


def parse_numbers(text: str, what: str) -> tuple[float, ...]:
    """``"0,5,10,20"`` → floats; a bad list raises ConfigError naming the option."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = float(part)
        except ValueError:
            raise ConfigError(f"{what} expects comma-separated numbers, got {part!r}") from None
        if not np.isfinite(v) or v < 0:
            raise ConfigError(f"{what} expects non-negative numbers, got {part!r}")
        out.append(v)
    if not out:
        raise ConfigError(f"{what} needs at least one number")
    return tuple(out)


@dataclass
class Scored:
    """Model outputs at every decision point of a source."""

    bundle: object
    model: object
    decisions: pa.Table | None
    user_id: np.ndarray
    t_ms: np.ndarray
    p: np.ndarray
    stay: np.ndarray | None
    amounts: tuple[float, ...]
    purchase_task: str
    stay_task: str | None
    seconds: float


def predict_decisions(model, spec, ds, amounts) -> tuple:
    """``(samples, decisions, P, S)`` for every decision point of dataset ``ds``: the samples featurized
    with ``spec``, the decision points in the samples' (user, t) order (``None`` when the source logs
    none), P under each amount and S (see ``predict_by_amount``)."""
    from edgeintent.toolkit.features import build_samples

    samples = build_samples(ds.events, spec, ds.decisions, streams=list(model.streams))
    p, s = predict_by_amount(model, samples, amounts)
    decisions = None
    if ds.decisions is not None:  # build_samples sorts by (user, t); so must the outcomes be
        decisions = ds.decisions.sort_by([("user_id", "ascending"), ("t_ms", "ascending")])
        decisions = decisions.replace_schema_metadata(ds.decisions.schema.metadata)
    return samples, decisions, p, s


def score_source(bundle_path, source: str, amounts: tuple[float, ...] | None = None, ds=None) -> Scored:
    """Load a bundle and a source, featurize every decision point, predict P under each amount and S."""
    from edgeintent.toolkit.bundle import load_bundle
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.bundle import load_model

    bundle = load_bundle(bundle_path)
    model = load_model(bundle)
    buy, stay = tasks_of(model)
    ds = ds or load_source(source)
    if amounts is None:
        amounts = _default_amounts(model, ds.decisions)
    amounts = tuple(float(a) for a in check_amounts(amounts))
    t0 = time.perf_counter()
    samples, decisions, p, s = predict_decisions(model, bundle.spec, ds, amounts)
    return Scored(bundle, model, decisions, samples.user_id, samples.t_ms, p, s, amounts, buy, stay,
                  time.perf_counter() - t0)  # fmt: skip


def _default_amounts(model, decisions: pa.Table | None) -> tuple[float, ...]:
    import json

    if decisions is not None and decisions.schema.metadata and b"amounts" in decisions.schema.metadata:
        return tuple(json.loads(decisions.schema.metadata[b"amounts"].decode()))
    hp = getattr(model, "hparams", {}) or {}
    if "amounts" in hp:
        return tuple(hp["amounts"])
    return (0.0, 5.0, 10.0, 20.0)


def run_allocate(bundle_path, source: str, budget: float, out: Path, amounts: tuple[float, ...] | None = None,
                 gamma: float = 1.0, objective: str = "incremental", order_value: float = 1.0,
                 scored: Scored | None = None) -> dict:  # fmt: skip
    """Allocate coupons over SOURCE's decision points, write them (Parquet, atomically) and decision.json."""
    import pyarrow.parquet as pq

    from edgeintent.io import atomic_path

    check_objective(objective)
    out = Path(out)
    if out.suffix != ".parquet":
        raise ConfigError(f"--out must be a .parquet file, got {out}")
    ensure_parent(out)
    sc = scored or score_source(bundle_path, source, amounts)
    if gamma < 1.0 and sc.stay is None:
        raise ConfigError(f"--gamma {gamma} needs a stay task, and {sc.model.registry_name} has none (use iidn)")
    t0 = time.perf_counter()
    alloc = allocate(sc.p, budget, sc.amounts, objective, sc.stay, gamma, order_value)
    solve_s = time.perf_counter() - t0
    n = sc.p.shape[0]
    rule = rule_from_allocation(alloc, order_value, sc.purchase_task, sc.stay_task,
                                {"data": source, "decision_points": n, "budget": float(budget), "spend": alloc.spend,
                                 "budget_per_decision_point": float(budget) / max(n, 1)})  # fmt: skip
    device = decide_batch(rule, sc.p, sc.stay)
    agree = float((device == alloc.choice).mean()) if n else 1.0
    table = pa.table({
        "user_id": pa.array(sc.user_id, pa.int64()),
        "t_ms": pa.array(sc.t_ms, pa.int64()),
        "amount": pa.array(alloc.offered, pa.float64()),
        "eligible": pa.array(alloc.eligible, pa.bool_()),
        "stay": pa.array(sc.stay if sc.stay is not None else np.full(n, np.nan), pa.float64()),
        "p_buy": pa.FixedSizeListArray.from_arrays(pa.array(sc.p.ravel(), pa.float64()), len(sc.amounts)),
        "device_amount": pa.array(np.asarray(sc.amounts)[device], pa.float64()),
    })  # fmt: skip
    meta = {"amounts": list(sc.amounts), "objective": objective, "budget": float(budget), "lambda": alloc.lam,
            "gamma": gamma}  # fmt: skip
    import json

    table = table.replace_schema_metadata({k: json.dumps(v) for k, v in meta.items()})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    write_rule(bundle_path, rule)
    summary = alloc.summary()
    summary.update({
        "bundle": str(bundle_path), "data": source, "out": str(out), "amounts": list(sc.amounts),
        "order_value": order_value, "rule_file": str(Path(bundle_path) / RULE_FILE), "device_parity": agree,
        "predict_seconds": round(sc.seconds, 3), "solve_seconds": round(solve_s, 4),
    })  # fmt: skip
    return summary


def run_policy_eval(bundle_path, source: str, budgets: tuple[float, ...] | None = None, gamma: float = 1.0,
                    objective: str = "incremental", order_value: float = 1.0, seed: int = 0, plot: Path | None = None,
                    ds=None, scored: Scored | None = None) -> dict:  # fmt: skip
    """Every policy at every budget on SOURCE's potential outcomes (the simulator's)."""
    check_objective(objective)
    if plot is not None:
        ensure_parent(plot)
    if scored is None:
        if ds is None:
            from edgeintent.toolkit.data.sources import load_source

            ds = load_source(source)
        truth = outcomes_from_decisions(ds.decisions, source)  # fails early without potential outcomes
        scored = score_source(bundle_path, source, tuple(truth.amounts), ds=ds)
    sc = scored
    truth = outcomes_from_decisions(sc.decisions, source)
    if gamma < 1.0 and sc.stay is None:
        raise ConfigError(f"--gamma {gamma} needs a stay task, and {sc.model.registry_name} has none (use iidn)")
    n = sc.p.shape[0]
    budgets = tuple(budgets) if budgets else tuple(b * n for b in DEFAULT_BUDGETS_PER_POINT)
    inp = PolicyInputs(sc.p, sc.stay, truth, gamma, objective, order_value, seed)
    rows = evaluate_policies(inp, budgets)
    for r in rows:
        r["budget_per_decision_point"] = r["budget"] / max(n, 1)
    notes = []
    trained_on = sc.bundle.config.get("data", {}).get("source")
    if trained_on == source:
        notes.append(f"{source} is the bundle's training data: the model has seen these users (optimistic)")
    result = {
        "bundle": str(bundle_path), "model": sc.bundle.config["model"]["name"], "data": source,
        "decision_points": n, "amounts": list(map(float, truth.amounts)), "objective": objective, "gamma": gamma,
        "rows": rows, "mckp_per_cost_ratio": ratios(rows), "notes": notes, "predict_seconds": round(sc.seconds, 2),
    }  # fmt: skip
    if plot is not None:
        plot_budget_uplift(rows, plot, f"{result['model']} on {source} ({n:,} decision points)")
        result["plot"] = str(plot)
    return result


def policy_table_lines(result: dict) -> list[str]:
    """The policy table as fixed-width lines of at most 70 characters (the CLI and the demo print these)."""
    lines = [f"{'budget':>8} {'/pt':>5}  {'policy':11} {'spend':>8} {'coupons':>7} {'incr.buy':>8} {'per 1k':>6} "
             f"{'redeem':>6}"]  # fmt: skip
    for r in result["rows"]:
        lines.append(f"{r['budget']:>8,.0f} {r['budget_per_decision_point']:>5.2f}  {r['policy']:11} {r['spend']:>8,.0f} "
                     f"{r['coupons']:>7,} {r['incremental']:>8.1f} {1000 * r['incremental_per_cost']:>6.2f} "
                     f"{r['redemption_rate']:>6.1%}")  # fmt: skip
    return lines
