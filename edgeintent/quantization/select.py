"""Build, judge and install a target's quantized artifacts (``edgeintent quantize``).

Each candidate runs in its real runtime on the bundle's validation users and is compared with fp32
torch through parity's functional comparisons: size, AUC per task and its delta, the share of
threshold decisions that flip, max |Δ| of logits and probabilities, and batch-1 latency in a fresh
measuring process (one thread). ``mode="auto"`` tries every recipe of the target and keeps the
smallest artifact whose AUC drop stays within the budget (and, for a vector output such as find's embedding, whose
lowest row cosine with fp32 stays at or above the quantized tolerance row's).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeintent.errors import ConfigError, ExportError
from edgeintent.exporters import ArtifactMeta, get_target, tree_files
from edgeintent.parity import functional as F
from edgeintent.quantization import check_quantizable, get_recipe, recipes
from edgeintent.runtimes import RUNTIMES, Artifact, open_artifact
from edgeintent.runtimes.child import measure_latency
from edgeintent.toolkit.models.exportable import feeds, outputs_in_batches, torch_model, torch_outputs

CALIBRATION_ROWS = 512


def latency(art: Artifact, one_row: dict[str, np.ndarray], runs: int = 200) -> dict:
    """Batch-1 latency of an artifact in a fresh process with one thread (p50 and mean, ms)."""
    if not RUNTIMES.get(art.runtime).timed:
        return {"p50_ms": None, "mean_ms": None, "why": f"{RUNTIMES.get(art.runtime).label} is functional only here: not timed"}
    return measure_latency(art, one_row, runs)


def probe_auc(samples, idx, ref: np.ndarray, got: np.ndarray, task: str) -> tuple[float | None, float | None]:
    """(AUC of ``got``, AUC of ``ref``) for ``task`` through one linear probe: a logistic regression fitted on
    the fp32 embeddings ``ref`` (n, D) of the rows whose label is observed, applied to both."""
    from sklearn.linear_model import LogisticRegression

    from edgeintent.toolkit.training.metrics import auc

    if task not in samples.labels:
        return None, None
    obs = samples.observed[task][idx]
    y = samples.labels[task][idx][obs]
    if len(y) < 20 or not 0 < y.mean() < 1 or not F.finite(got):
        return None, None
    probe = LogisticRegression(max_iter=500).fit(ref[obs], y)
    return auc(y, probe.decision_function(got[obs])), auc(y, probe.decision_function(ref[obs]))


def evaluate(model, samples, idx, ref: dict, got: dict) -> dict:
    """Per task: AUC (and fp32 torch's), its delta, decision flips and max |Δ| of logits and probabilities.
    Per vector output (an embedding): max |Δ| of its components, the lowest row cosine, and the AUC of a
    linear probe for ``buy_rt`` (fitted on the fp32 embeddings) on fp32 and on the artifact's."""
    from edgeintent.toolkit.models.signature import embedding_names
    from edgeintent.toolkit.training.metrics import auc

    tasks = {}
    for e in embedding_names(model):
        finite = F.finite(got[e])
        a_got, a_ref = probe_auc(samples, idx, ref[e], got[e], "buy_rt")
        tasks[e] = {
            "auc": a_got,
            "auc_fp32": a_ref,
            "auc_delta": None if a_got is None else float(a_got - a_ref),
            "probe_task": "buy_rt",
            "emb_max_abs": F.max_abs(ref[e], got[e]) if finite else float("inf"),
            "cosine_min": F.cosine_min(ref[e], got[e]),
        }
    for t in model.tasks:
        obs = samples.observed[t][idx] if t in samples.observed else np.zeros(len(idx), bool)
        y = samples.labels[t][idx][obs] if t in samples.labels else np.empty(0)
        rl, gl = ref[f"logit_{t}"], got[f"logit_{t}"]
        rp, gp = ref[f"prob_{t}"], got[f"prob_{t}"]
        finite = F.finite(gl)
        a_ref = auc(y, rl[obs]) if len(y) and 0 < y.mean() < 1 else None
        a_got = auc(y, gl[obs]) if a_ref is not None and finite else None
        tasks[t] = {
            "auc": a_got,
            "auc_fp32": a_ref,
            "auc_delta": None if a_got is None else float(a_got - a_ref),
            "flip_share": F.flip_share(rp, gp, F.decision_thresholds(rp)),
            "logit_max_abs": F.max_abs(rl, gl) if finite else float("inf"),
            "prob_max_abs": F.max_abs(rp, gp) if finite else float("inf"),
        }
    return tasks


def _quietly(fn, *args):
    """onnxruntime.quantization logs pre-processing advice on the root logger: keep it off the CLI."""
    import logging

    logging.disable(logging.WARNING)
    try:
        return fn(*args)
    finally:
        logging.disable(logging.NOTSET)


def quantize_bundle(bundle_dir, target: str, mode: str = "auto", source: str | None = None, budget_auc: float = 0.002,
                    runs: int = 200, say: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Build, evaluate and install quantized artifacts; returns the report (also written to the bundle)."""
    from edgeintent.io import canonical_json
    from edgeintent.toolkit.bundle import add_files, load_bundle, load_model
    from edgeintent.toolkit.training.trainer import evaluation_rows

    say = say or (lambda *_: None)
    if budget_auc < 0:
        raise ConfigError(f"--budget-auc must be ≥ 0, got {budget_auc}")
    check_quantizable(target)
    cands = recipes(target) if mode == "auto" else [get_recipe(target, mode)]
    why = get_target(target).missing()
    if why:
        raise ExportError(f"cannot quantize for {target}: {why}")
    bundle = load_bundle(bundle_dir)
    model = torch_model(load_model(bundle))
    samples, idx, source, users = evaluation_rows(bundle, model, source)
    ref = outputs_in_batches(lambda f: torch_outputs(model, f), model, samples, idx, batch=2048)
    calib = [feeds(model, samples, rows) for rows in np.array_split(_calibration_rows(samples, idx), 8)]
    one = feeds(model, samples, idx[:1])
    fp32_size = _fp32_size(model, bundle, target)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeintent-quant-") as tmp:
        for r in cands:
            say(f"  {target}/{r.mode}: {r.description}")
            out = Path(tmp) / get_target(target).artifact_name(r.mode)
            extra = _quietly(r.build, model, bundle, calib, out)
            size = sum(p.stat().st_size for p in ([out] if out.is_file() else out.rglob("*")) if p.is_file())
            weights = out / "Data/com.apple.CoreML/weights" if out.is_dir() else None  # mlpackage: the weight blob alone
            weight_bytes = sum(p.stat().st_size for p in weights.rglob("*") if p.is_file()) if weights else None
            art = candidate_artifact(target, r.mode, out, model, bundle, extra, size)
            with open_artifact(art) as runner:
                got = outputs_in_batches(runner.run, model, samples, idx, batch=256)
            tasks = evaluate(model, samples, idx, ref, got)
            lat = latency(art, one, runs)
            drop = max((-(v["auc_delta"]) for v in tasks.values() if v["auc_delta"] is not None), default=float("inf"))
            rows.append({"mode": r.mode, "bytes": size, "weight_bytes": weight_bytes, "size_ratio": size / fp32_size, "tasks": tasks, "latency": lat,
                         "max_auc_drop": drop, "within_budget": drop <= budget_auc and _cosines_ok(tasks),
                         "extra": extra, "_out": out})  # fmt: skip
        chosen = rows if mode != "auto" else _pick(rows)
        report = {"bundle": str(bundle_dir), "target": target, "mode": mode, "data": source, "users": users,
                  "rows": int(len(idx)), "budget_auc": budget_auc, "fp32_bytes": fp32_size,
                  "candidates": [{k: v for k, v in row.items() if k != "_out"} for row in rows],
                  "installed": [row["mode"] for row in chosen]}  # fmt: skip
        if mode == "auto":
            report["choice"] = _explain(rows, chosen, budget_auc)
        files: dict[str, bytes] = {f"exports/{target}/quantize-report.json": canonical_json(report)}
        replace: tuple[str, ...] = ()
        for row in chosen:
            extra = dict(row["extra"], quantize_report={"budget_auc": budget_auc, "tasks": row["tasks"], "data": source})
            tree, _, whole = tree_files(bundle, target, row["mode"], model, row["_out"], extra)
            files.update(tree)
            replace += whole
        # one commit: this run's artifacts and report in, the artifacts an earlier run installed and this one did not out
        add_files(bundle.path, files, replace=replace, remove=_installed_before(bundle, target, files))
    return report


def _installed_before(bundle, target: str, files: dict[str, bytes]) -> list[str]:
    """The artifacts (and their ``.meta.json``) an earlier ``quantize`` installed for ``target`` that ``files``
    does not install again: their metadata carries a ``quantize_report``; an exported artifact does not."""
    from edgeintent.exporters import exported_artifacts

    stale = []
    for meta in exported_artifacts(bundle, [target]):
        if meta.quantize_report is not None and f"{meta.artifact}.meta.json" not in files:
            stale += [meta.artifact, f"{meta.artifact}.meta.json"]
    return stale


def candidate_artifact(target: str, mode: str, out: Path, model, bundle, extra: dict, size: int = 0) -> Artifact:
    """The runtime artifact of a recipe's output ``out`` (not installed in the bundle yet)."""
    sig = model.signature()
    meta = ArtifactMeta(target, mode, str(out), bundle.config["model"]["name"], sig.inputs, sig.outputs, size, extra=dict(extra))
    return get_target(target).artifact(out, meta)


def _calibration_rows(samples, eval_idx: np.ndarray, n: int = CALIBRATION_ROWS, seed: int = 0) -> np.ndarray:
    """Up to ``n`` training windows (rows not evaluated on; all rows if the source has no others)."""
    rest = np.setdiff1d(np.arange(len(samples)), eval_idx)
    pool = rest if len(rest) else eval_idx
    return np.sort(np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False))


def _fp32_size(model, bundle, target: str) -> int:
    from edgeintent.exporters import exported_artifacts

    for meta in exported_artifacts(bundle, [target]):
        if meta.precision == "fp32":
            return int(meta.bytes)
    from edgeintent.toolkit.golden import golden_samples

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / get_target(target).artifact_name("fp32")
        get_target(target).export(model, bundle.spec, golden_samples(bundle.golden), out, "fp32")
        return sum(p.stat().st_size for p in ([out] if out.is_file() else out.rglob("*")) if p.is_file())


def _cosines_ok(tasks: dict) -> bool:
    """Every vector output keeps its direction: the lowest row cosine with fp32 is at least the quantized
    tolerance row's (a probe's AUC can hold while the embedding itself has moved)."""
    from edgeintent.parity.policy import QUANTIZED

    return all(v["cosine_min"] >= QUANTIZED.cosine_min for v in tasks.values() if "cosine_min" in v)


def _pick(rows: list[dict]) -> list[dict]:
    ok = [r for r in rows if r["within_budget"]]
    return [min(ok, key=lambda r: r["bytes"])] if ok else []


def _explain(rows: list[dict], chosen: list[dict], budget: float) -> str:
    if not chosen:
        best = min(rows, key=lambda r: r["max_auc_drop"])
        return (f"no candidate stays within an AUC drop of {budget}: the best, {best['mode']}, drops {best['max_auc_drop']:.4f}; "
                "nothing was installed")  # fmt: skip
    c = chosen[0]
    others = [r["mode"] for r in rows if r["within_budget"] and r is not c]
    out = [r for r in rows if not r["within_budget"]]
    text = (f"{c['mode']}: the smallest within the budget ({c['bytes']:,} bytes, {c['size_ratio']:.0%} of fp32, "
            f"largest AUC drop {max(c['max_auc_drop'], 0.0):.4f} ≤ {budget})")
    if others:
        text += f"; also within budget but larger: {', '.join(others)}"
    if out:
        text += "; over budget: " + ", ".join(f"{r['mode']} (AUC drop {r['max_auc_drop']:.4f}"
                                              + ("" if _cosines_ok(r.get("tasks", {})) else ", embedding cosine below the bound")
                                              + ")" for r in out)  # fmt: skip
    return text
