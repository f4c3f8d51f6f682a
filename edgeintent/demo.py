"""The end-to-end demo: every stage on the simulator, from events to coupon decisions.

simulate → fit FeatureSpec → featurize → train (dipn, gbdt; aitm on the funnel; find with zero-/few-shot
targeting) → evaluate → export + parity → bench →
decide (iidn, coupon policies, allocation). It sits on the top floor, beside the CLI, because it calls
every stage. It returns plain dicts (what ``edgeintent demo --json`` prints); progress lines go
through the ``say`` callback the caller passes (the CLI passes its console's ``print``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from edgeintent.io import atomic_write_text
from edgeintent.toolkit.data.simulate_file import simulate_to_file
from edgeintent.toolkit.data.sources import load_source
from edgeintent.toolkit.features import FitConfig, save_samples
from edgeintent.toolkit.features.inspect import inspect_dataset


def run_demo(users: int, seed: int, out_dir: Path, say: Callable[[str], None] | None = None, epochs: int = 6) -> dict:
    """simulate → fit spec (training users) → featurize → train → evaluate; each later stage adds itself here."""
    say = say or (lambda *_: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"out_dir": str(out_dir)}
    n_stages = 8

    say(f"[bold]1/{n_stages} simulate[/] {users:,} users (seed {seed})")
    t0 = time.perf_counter()
    sim = simulate_to_file(users, seed, out_dir / "events.parquet")
    result["simulate"] = dict(sim, seconds=round(time.perf_counter() - t0, 2))
    say(f"    {sim['events']:,} events, {sim['decisions']:,} decision points → {sim['events_file']}")

    from edgeintent.toolkit.training.trainer import Prepared, TrainConfig, prepare, train_bundle

    source = str(out_dir / "events.parquet")
    ds = load_source(source)
    cfg = TrainConfig(epochs=epochs, seed=seed, threads=2)
    say(f"[bold]2/{n_stages} fit FeatureSpec[/] on the training users ({1 - cfg.valid_share:.0%}, split by user)")
    t0 = time.perf_counter()
    prep: Prepared = prepare(ds, cfg.seed, cfg.valid_share, FitConfig())
    secs = time.perf_counter() - t0
    spec, samples = prep.spec, prep.samples
    spec.save(out_dir / "feature_spec.json")
    result["spec"] = {s: spec.cardinalities(s) for s in spec.streams}
    for s in spec.streams:
        say(f"    {s}: {len(spec.features[s])} features per event, max_len {spec.max_len[s]}")

    say(f"[bold]3/{n_stages} featurize[/] every decision point")
    save_samples(samples, out_dir / "samples.npz")
    report = inspect_dataset(ds)
    rates = {k: v["rate"] for k, v in report["decision_points"]["labels"].items()}
    result["featurize"] = {
        "samples": len(samples),
        "train_samples": int(len(prep.train_idx)),
        "valid_samples": int(len(prep.valid_idx)),
        "shapes": {s: list(v.shape) for s, v in samples.x.items()},
        "seconds_fit_and_featurize": round(secs, 3),
        "label_rates": rates,
    }
    result["inspect"] = report
    say(f"    {len(samples):,} samples ({len(prep.train_idx):,} train / {len(prep.valid_idx):,} validation), "
        + ", ".join(f"{s} {tuple(v.shape)}" for s, v in samples.x.items()))
    say("    events per stream: " + ", ".join(f"{s} {v['events']:,}" for s, v in report["streams"].items()))
    say("    label rates per decision point: " + ", ".join(f"{k} {v:.1%}" for k, v in rates.items()))

    say(f"[bold]4/{n_stages} train[/] dipn ({epochs} epochs at most, early stopping), the gbdt baseline and aitm")
    result["train"] = {}
    for name in ("dipn", "gbdt"):
        summary = train_bundle(name, source, out_dir / name, cfg, prepared=prep, overwrite=True)
        result["train"][name] = summary
        say(f"    {name}: {summary['parameters']:,} parameters, {summary['weight_bytes'] / 1024:.0f} KB, "
            f"{summary['train_seconds']:.0f} s → bundle {out_dir / name}")

    result["funnel"] = _demo_funnel(source, out_dir, cfg, prep, say)
    result["find"] = _demo_find(source, out_dir, cfg, prep, say)

    fresh = f"sim:{users}:{seed + 1}"
    say(f"[bold]5/{n_stages} evaluate[/] on held-out users ({len(prep.valid_idx):,} decision points; they also "
        f"chose the epoch) and on a fresh population ({fresh})")
    from edgeintent.toolkit.training.trainer import evaluate_bundle

    result["evaluate"] = {}
    for name, summary in result["train"].items():
        fresh_report = evaluate_bundle(out_dir / name, fresh, users="all")["tasks"]
        result["evaluate"][name] = {"valid": summary["valid"], "fresh": fresh_report}
        for label, rep in (("held-out users", summary["valid"]), ("fresh population", fresh_report)):
            r = rep["buy_rt"]
            say(f"    {name:5s} {label:17s} buy_rt AUC {r['auc']:.3f} [{r['auc_ci'][0]:.3f}, {r['auc_ci'][1]:.3f}]"
                f"  ECE {r['ece']:.3f}")
    say(f"[bold]6/{n_stages} export[/] dipn to every target and [bold]check parity[/] against torch on the golden set")
    result["export"], result["parity"] = _export_and_check(out_dir / "dipn", say)

    # stage 7: bench (edgeintent/runtime_sim); the parity report of stage 6 fills the status column
    from edgeintent.runtime_sim.bench import BenchConfig, run_bench
    from edgeintent.runtime_sim.report import bench_table, summary_lines

    say(f"[bold]7/{n_stages} bench[/] dipn's artifacts under the cpu-arm profile (200 runs each, a fresh process per artifact)")
    result["bench"] = run_bench(out_dir / "dipn", BenchConfig(device="cpu-arm", runs=200), parity_report=result["parity"])
    say(bench_table(result["bench"]))
    for line in summary_lines(result["bench"]):
        say(f"    {line}")

    say(f"[bold]{n_stages}/{n_stages} decide[/] train iidn; coupon policies on {fresh}'s potential outcomes")
    result["decide"] = _demo_decide(source, fresh, out_dir, cfg, prep, say)
    result["rank"] = _demo_rank(ds, out_dir, seed, say)
    atomic_write_text(out_dir / "demo.json", json.dumps(result, indent=1, default=str))
    say(f"wrote {out_dir}/: events.parquet (+ .decisions.parquet), feature_spec.json, samples.npz, "
        "dipn/ (with exports/), gbdt/, aitm/, find/ and iidn/ bundles (iidn/decision.json), rank/, decisions.parquet, policy.png, demo.json")
    return result


def _demo_rank(ds, out_dir: Path, seed: int, say: Callable[[str], None], users: int = 1000) -> dict:
    """Scenario coarse ranking (edgeintent/rank) on the first ``users`` simulated users: fit, judge on the
    held-out users (each one's engaged categories of a day, from what came before), write the rank bundle."""
    import numpy as np

    from edgeintent.rank import RankConfig
    from edgeintent.rank.fit import fit_ranker, write_rank_bundle

    t0 = time.perf_counter()
    keep = np.unique(ds.events.stream("cloud")["user_id"].to_numpy())[:users]
    sub = ds.with_users(keep, name=f"{ds.name} (first {len(keep)} users)")
    ranker, m, golden = fit_ranker(sub, RankConfig(seed=seed, rounds=30))
    write_rank_bundle(out_dir / "rank", ranker, m, golden, overwrite=True)
    f = m["fusion"]
    say(f"[bold]rank[/] {len(keep):,} users: fused ranker recall@10 {f['recall@10']:.3f}, NDCG@10 {f['ndcg@10']:.3f} on "
        f"{m['requests']} held-out requests (recency alone {m['recency']['ndcg@10']:.3f}, popularity "
        f"{m['popularity']['ndcg@10']:.3f}) → bundle {out_dir / 'rank'}")
    return {k: m[k] for k in ("requests", "users", "fusion", "recency", "popularity")} | {"seconds": round(time.perf_counter() - t0, 2)}


def _demo_funnel(source: str, out_dir: Path, cfg, prep, say: Callable[[str], None]) -> dict:
    """Demo stage 4, continued: aitm on the simulator's engage → buy funnel (3 epochs at most), one line per step."""
    from dataclasses import replace

    from edgeintent.toolkit.training.trainer import train_bundle

    summary = train_bundle("aitm", source, out_dir / "aitm", replace(cfg, epochs=min(cfg.epochs, 3)), prepared=prep,
                           overwrite=True)  # fmt: skip
    say(f"    aitm: {summary['parameters']:,} parameters, {summary['train_seconds']:.0f} s → bundle {out_dir / 'aitm'}; "
        "funnel on held-out users:")  # fmt: skip
    for r in summary["funnel"]["steps"]:
        given = (f", AUC given {r['n_given_prev']:,} rows at the previous step {r['auc_given_prev']:.3f}, "
                 f"p > previous step's on {r['violation']:.2%} of rows") if "violation" in r else ""  # fmt: skip
        say(f"    aitm {r['task']:9s} rate {r['rate']:.1%}, AUC {r['auc']:.3f} [{r['auc_ci'][0]:.3f}, {r['auc_ci'][1]:.3f}], "
            f"ECE {r['ece']:.3f}{given}")  # fmt: skip
    return summary


def _demo_find(source: str, out_dir: Path, cfg, prep, say: Callable[[str], None]) -> dict:
    """Demo stage 4, continued: find (pretraining + alignment, 4 epochs on 4,000 training decision points), then zero-shot and few-shot targeting
    (5 + 5 seed rows, mean of 3 draws) on the held-out users' decision points for two demands."""
    from dataclasses import replace

    import numpy as np

    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.features.text import sentence, table_for
    from edgeintent.toolkit.models.exportable import predict_embeddings
    from edgeintent.toolkit.training.find import future_clauses, known
    from edgeintent.toolkit.training.metrics import auc
    from edgeintent.toolkit.training.targeting import prompt_tune, prompted_scores, zero_shot
    from edgeintent.toolkit.training.trainer import train_bundle

    rng = np.random.default_rng(cfg.seed)
    # a sample of the training decision points keeps this stage to seconds (benchmarks/targeting.py trains longer)
    few_rows = replace(prep, train_idx=np.sort(rng.choice(prep.train_idx, min(4000, len(prep.train_idx)), replace=False)))
    summary = train_bundle("find", source, out_dir / "find", replace(cfg, epochs=4, batch_size=64, threads=1),
                           prepared=few_rows, overwrite=True)  # fmt: skip
    model = load_model(load_bundle(out_dir / "find"))
    table = table_for(model.streams)
    rows = prep.valid_idx
    clauses = known(future_clauses(table, prep.events, prep.samples.take(rows)), set(model.vocab))
    emb = predict_embeddings(model, prep.samples, rows)["embedding"]
    clicks = [c for c in dict.fromkeys(c for cl in clauses for c in cl) if c[0] == "click"]
    demands = [("buy_any", None)] + clicks[:1]
    say(f"    find: {summary['parameters']:,} parameters (user encoder + text tower), {summary['train_seconds']:.0f} s → "
        f"bundle {out_dir / 'find'}; targeting {len(rows):,} held-out decision points:")  # fmt: skip
    out = {"parameters": summary["parameters"], "train_seconds": summary["train_seconds"], "demands": []}
    for clause in demands:
        text = sentence(table, [clause])
        y = np.array([clause in c for c in clauses], np.int8)
        zs = zero_shot(model, emb, text)
        few, same = [], []
        pos_all, neg_all = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        for d in range(3 if len(pos_all) >= 6 and len(neg_all) >= 6 else 0):
            pos, neg = rng.choice(pos_all, 5, replace=False), rng.choice(neg_all, 5, replace=False)
            rest = np.setdiff1d(np.arange(len(y)), np.concatenate([pos, neg]))
            few.append(auc(y[rest], prompted_scores(model, emb, text, prompt_tune(model, emb, text, pos, neg, seed=d))[rest]))
            same.append(auc(y[rest], zs[rest]))
        row = {"demand": text, "rate": float(y.mean()), "zero_shot_auc": auc(y, zs),
               "few_shot_auc": float(np.mean(few)) if few else None,
               "zero_shot_auc_same_rows": float(np.mean(same)) if same else None}  # fmt: skip
        out["demands"].append(row)
        fs = "n/a" if not few else f"{row['few_shot_auc']:.3f} (zero-shot on the same rows {row['zero_shot_auc_same_rows']:.3f})"
        say(f"    find {text!r} (rate {row['rate']:.1%}): zero-shot AUC {row['zero_shot_auc']:.3f}, few-shot 5+5 seeds {fs}")
    return out


def _demo_decide(source: str, fresh: str, out_dir: Path, cfg, prep, say: Callable[[str], None]) -> dict:
    """Demo stage: an IIDN bundle, the policy table on a fresh population and the on-device rule."""
    from edgeintent.decide.run import policy_table_lines, run_allocate, run_policy_eval, score_source
    from edgeintent.toolkit.training.trainer import train_bundle

    t0 = time.perf_counter()
    summary = train_bundle("iidn", source, out_dir / "iidn", cfg, prepared=prep, overwrite=True)
    say(f"    iidn: {summary['parameters']:,} parameters, {summary['train_seconds']:.0f} s → bundle {out_dir / 'iidn'}")
    ds = load_source(fresh)
    scored = score_source(out_dir / "iidn", fresh, ds=ds)
    n = scored.p.shape[0]
    pe = run_policy_eval(out_dir / "iidn", fresh, plot=out_dir / "policy.png", scored=scored)
    for line in policy_table_lines(pe):
        say("    " + line)
    for q in pe["mckp_per_cost_ratio"]:
        oracle = f"{1 / q['vs_oracle']:.2f}x mckp" if q.get("vs_oracle") else "mckp gave no coupon"
        say(f"    budget {q['budget'] / n:g}/point: incremental purchases per unit cost, mckp "
            f"{q.get('vs_give-all', float('nan')):.2f}x give-all, oracle {oracle}")
    alloc = run_allocate(out_dir / "iidn", fresh, 5.0 * n, out_dir / "decisions.parquet", scored=scored)
    say(f"    allocate at 5/point: λ = {alloc['lambda']:.4g}, LP gap {alloc['lp_gap']:.1e}, "
        f"on-device rule = solver for {alloc['device_parity']:.2%}")
    say("    (a few thousand users teach iidn little of the coupon response; benchmarks/coupon_policy.py trains on 20,000)")
    return {"train": summary, "policy_eval": pe, "allocate": alloc, "seconds": round(time.perf_counter() - t0, 2)}


#: targets the demo does not export (what they cost there), with the command that does
DEMO_LEAVES_OUT = {
    "executorch": "its export takes ~110 CPU-s for a dipn (~45 with --set rnn=scan); edgeintent export BUNDLE --target executorch",
    "litert": "litert-torch converts dipn's unrolled recurrences in 1–3 minutes here; edgeintent export BUNDLE --target litert",
}


def _export_and_check(bundle_dir: Path, say: Callable[[str], None]) -> tuple[list[dict], dict]:
    """Export a bundle to every target (fp32) and run the parity gate; one line per artifact."""
    from edgeintent.exporters import export_bundle, list_targets
    from edgeintent.parity import run_parity
    from edgeintent.parity.report import short_runtime

    metas = []
    for target in list_targets():
        if target in DEMO_LEAVES_OUT:
            say(f"    {target}: not in the demo ({DEMO_LEAVES_OUT[target]})")
            continue
        t0 = time.perf_counter()
        meta = export_bundle(bundle_dir, target).to_json()
        metas.append(dict(meta, seconds=round(time.perf_counter() - t0, 2)))
    report = run_parity(bundle_dir)
    by_target: dict[tuple[str, str], list[dict]] = {}
    for r in report["results"]:
        by_target.setdefault((r["target"], r["precision"]), []).append(r)
    sizes = {m["target"]: m["bytes"] for m in metas}
    for (target, precision), rows in by_target.items():
        worst = max((r["metrics"]["prob_max_abs"] for r in rows), key=lambda v: -1.0 if v is None else v)
        size = f"{sizes[target] / 1024:.0f} KB, " if target in sizes else ""
        status = "pass" if all(r["passed"] for r in rows) else "FAIL"
        if worst is None:  # the phone kit (a featurizer): bit-identical ids on the raw golden events
            differ = sum(r["metrics"]["rows_differ"] for r in rows)
            say(f"    {target:6s} {size}{short_runtime(rows[0])}: {differ} of {rows[0]['metrics']['rows']} raw-event "
                f"cases differ in {len(rows)} streams → {status}")
            continue
        say(f"    {target:6s} {precision} {size}{short_runtime(rows[0])}: max |Δp| {worst:.1e} over "
            f"{report['golden_rows']} golden rows × {len(report['variants'])} input variants → {status}")
    return metas, report
