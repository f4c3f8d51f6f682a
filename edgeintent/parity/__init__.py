"""The parity gate: every exported artifact, in its real runtime, against the torch original.

Inputs are the bundle's golden set (recorded validation windows plus edge cases: empty streams,
length 1, max length, long gaps, unknown ids), replayed the ways a phone may send them:

- ``full_width``   every stream at its full window (``max_len``), batches of 64;
- ``trimmed``      batches of 64 cut to each stream's longest row (streams of different lengths);
- ``batch1``       single rows cut to their own lengths (the edge cases and the first recorded rows);
- ``garbage_pad``  full width with random valid ids and ages in every padded position.

A fixed-shape artifact (ExecuTorch: batch 1, streams at ``max_len``) runs every variant padded to its
static shapes, row by row, and must also refuse, with one line, a window longer than ``max_len``.

The reference is the torch output recorded in ``golden.npz`` when the bundle was trained; torch
itself is checked on the same variants (row ``torch``), so padding dependence shows up there first.
Per output: max abs difference of probabilities and of logits, Spearman of logits, AUC delta (on
recorded rows with labels), share of threshold decisions that flip, and non-finite values; per vector
output (an embedding, ``signature().embeddings``): max |Δ| of its components and the lowest row cosine.
The tolerances are in ``policy.py``. On an ONNX breach the report names the first divergent node.
"""

from __future__ import annotations

import importlib
import platform
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeintent.errors import ConfigError
from edgeintent.exporters import artifact_of, exported_artifacts, get_target, list_targets
from edgeintent.parity import functional as F
from edgeintent.parity.policy import Tolerance, tolerance
from edgeintent.runtimes import HostProvider
from edgeintent.toolkit.golden import GoldenSet

VARIANTS = ("full_width", "trimmed", "batch1", "garbage_pad")
BATCH = 64
BATCH1_RECORDED = 8
MIN_CLASS_ROWS = 10  # AUC delta only with at least this many labelled positives and negatives


@dataclass
class OutputResult:
    target: str
    precision: str
    output: str
    runtime: str
    arch: str
    metrics: dict
    tolerance: dict
    passed: bool
    reasons: list[str] = field(default_factory=list)
    first_divergent_node: dict | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _chunks(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(lo, min(lo + size, n)) for lo in range(0, n, size)]


def variant_batches(model, bundle, seed: int = 0) -> dict[str, list[tuple[np.ndarray, dict[str, np.ndarray]]]]:
    """Per variant, a list of (row indices into the golden set, feeds)."""
    from edgeintent.toolkit.models.exportable import feeds

    golden = GoldenSet.of(bundle)
    samples = golden.samples
    n = len(samples)
    full = {s: int(samples.x[s].shape[1]) for s in model.streams}
    cases = golden.kinds
    out: dict[str, list] = {v: [] for v in VARIANTS}
    for idx in _chunks(n, BATCH):
        out["full_width"].append((idx, feeds(model, samples, idx, widths=full)))
        out["trimmed"].append((idx, feeds(model, samples, idx)))
        out["garbage_pad"].append((idx, _garbage(feeds(model, samples, idx, widths=full), model, bundle.spec, seed)))
    recorded = np.flatnonzero(cases == "recorded")[:BATCH1_RECORDED]
    for i in np.concatenate([recorded, np.flatnonzero(cases != "recorded")]):
        out["batch1"].append((np.array([i]), feeds(model, samples, np.array([i]))))
    return out


def _garbage(f: dict[str, np.ndarray], model, spec, seed: int) -> dict[str, np.ndarray]:
    """Random valid ids and ages in the padded positions (a correct model ignores them)."""
    rng = np.random.default_rng(seed)
    f = {k: v.copy() for k, v in f.items()}
    for s in model.streams:
        x, length = f[s], f[f"{s}_len"]
        pad = np.arange(x.shape[1])[None, :] >= length[:, None]
        card = np.array(spec.cardinalities(s))
        noise = (rng.random(x.shape) * card[None, None, :]).astype(x.dtype)
        x[pad] = noise[pad]
        if f"{s}_age" in f:
            age = f[f"{s}_age"]
            age[pad] = rng.uniform(0, 12, size=int(pad.sum())).astype(age.dtype)
    return f


def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], task: str, labels: np.ndarray | None,
            recorded: np.ndarray, tol: Tolerance, ranking: bool = True) -> tuple[dict, list[str]]:  # fmt: skip
    """Metrics of one task's outputs (prob and logit) and the tolerance breaches.

    ``ranking=False`` (the few single rows of ``batch1``) checks values only: Spearman, AUC and
    decision flips need the whole golden set to mean anything.
    """
    rp, rl = ref[f"prob_{task}"], ref[f"logit_{task}"]
    gp, gl = got[f"prob_{task}"], got[f"logit_{task}"]
    reasons = []
    finite = F.finite(gp, gl)
    if not finite:
        reasons.append(f"non-finite outputs in {int((~np.isfinite(gp)).sum() + (~np.isfinite(gl)).sum())} values (overflow?)")
    prob_abs = F.max_abs(rp, gp) if finite else float("inf")
    logit_abs = F.max_abs(rl, gl) if finite else float("inf")
    spearman = flips = auc_delta = None
    if ranking and finite:
        spearman = F.spearman(rl, gl)
    if ranking:
        flips = F.flip_share(rp, gp, F.decision_thresholds(rp[recorded], rp))
    if ranking and labels is not None and finite:
        sel = recorded & (labels >= 0)
        pos = int((labels[sel] == 1).sum())
        if min(pos, int(sel.sum()) - pos) >= MIN_CLASS_ROWS:  # with fewer, one swapped pair moves AUC by > 0.01
            auc_delta = abs(F.auc_delta(labels[sel], rl[sel], gl[sel]))
    metrics = {"prob_max_abs": prob_abs, "logit_max_abs": logit_abs, "spearman": spearman, "auc_delta": auc_delta,
               "flip_share": flips, "finite": finite, "rows": int(len(rp))}  # fmt: skip
    if finite:
        if prob_abs > tol.prob_abs:
            reasons.append(f"probabilities differ by {prob_abs:.3g} > {tol.prob_abs:g}")
        if logit_abs > tol.logit_abs:
            reasons.append(f"logits differ by {logit_abs:.3g} > {tol.logit_abs:g}")
        if spearman is not None and not spearman >= tol.spearman_min:
            reasons.append(f"Spearman {spearman:.6f} < {tol.spearman_min}")
        if auc_delta is not None and auc_delta > tol.auc_delta:
            reasons.append(f"AUC moved by {auc_delta:.3g} > {tol.auc_delta:g}")
        if flips is not None and flips > tol.flip_share:
            reasons.append(f"{flips:.2%} of decisions flip > {tol.flip_share:.2%}")
    return metrics, reasons


def compare_embedding(ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> tuple[dict, list[str]]:
    """Metrics of one vector output ((n, D) each): max |Δ| of its components, the lowest row cosine."""
    reasons = []
    finite = F.finite(got)
    if not finite:
        reasons.append(f"non-finite outputs in {int((~np.isfinite(got)).sum())} values (overflow?)")
    emb_abs = F.max_abs(ref, got) if finite else float("inf")
    cos = F.cosine_min(ref, got) if finite else float("-inf")
    metrics = {"emb_max_abs": emb_abs, "cosine_min": cos, "prob_max_abs": None, "logit_max_abs": None, "spearman": None,
               "auc_delta": None, "flip_share": None, "finite": finite, "rows": int(len(ref))}  # fmt: skip
    if finite:
        if emb_abs > tol.emb_abs:
            reasons.append(f"embeddings differ by {emb_abs:.3g} > {tol.emb_abs:g}")
        if not cos >= tol.cosine_min:
            reasons.append(f"embedding cosine {cos:.6f} < {tol.cosine_min}")
    return metrics, reasons


def _run_variants(run: Callable[[dict], dict], batches: dict, n: int, outputs: list[str],
                  vectors: tuple[str, ...] = ()) -> dict[str, dict[str, np.ndarray]]:  # fmt: skip
    """Outputs per variant, in golden row order (a vector output as (n, D))."""
    res = {}
    for variant, items in batches.items():
        acc: dict[str, np.ndarray] = {o: np.full(n, np.nan, np.float64) for o in outputs if o not in vectors}
        for idx, f in items:
            got = run(f)
            for o in outputs:
                v = np.asarray(got[o], np.float64)
                if o in vectors:
                    v = v.reshape(len(idx), -1)
                    acc.setdefault(o, np.full((n, v.shape[1]), np.nan, np.float64))[idx] = v
                else:
                    acc[o][idx] = v.reshape(-1)
        covered = np.unique(np.concatenate([i for i, _ in items]))
        res[variant] = {o: acc[o][covered] for o in outputs} | {"_rows": covered}
    return res


def check_runner(name: str, precision: str, runtime: str, arch: str, run: Callable[[dict], dict], model, bundle,
                 batches: dict, tol: Tolerance | None = None) -> list[OutputResult]:  # fmt: skip
    """Compare one runner with the golden reference on every variant; one result per task and per
    vector output."""
    from edgeintent.toolkit.models.signature import embedding_names

    golden = GoldenSet.of(bundle)
    n = len(golden)
    outputs = model.output_names()
    vectors = tuple(embedding_names(model))
    tol = tol or tolerance(name, precision, arch=arch)
    per_variant = _run_variants(run, batches, n, outputs, vectors)
    results = []
    for out in vectors:
        worst = None
        all_reasons = []
        for variant, got in per_variant.items():
            ref = golden.reference(out)[got["_rows"]].astype(np.float64)
            metrics, reasons = compare_embedding(ref, got[out], tol)
            all_reasons += [f"{variant}: {r}" for r in reasons]
            if worst is None or _worse(metrics, worst[0]):
                worst = (metrics, variant)
        metrics = dict(worst[0], worst_variant=worst[1])
        results.append(OutputResult(name, precision, out, runtime, arch, metrics, tol.as_dict(), not all_reasons, all_reasons))
    for task in model.tasks:
        worst: tuple[dict, list[str], str] | None = None
        all_reasons: list[str] = []
        ranking: dict[str, list] = {"spearman": [], "auc_delta": [], "flip_share": []}
        for variant, got in per_variant.items():
            rows = got["_rows"]
            ref = {o: golden.reference(o)[rows].astype(np.float64) for o in outputs if o not in vectors}
            labels = golden.labels(task)
            labels = None if labels is None else labels[rows]
            recorded = golden.recorded[rows]
            metrics, reasons = compare(ref, got, task, labels, recorded, tol, ranking=variant != "batch1")
            all_reasons += [f"{variant}: {r}" for r in reasons]
            for k, vals in ranking.items():
                if metrics[k] is not None:
                    vals.append(metrics[k])
            if worst is None or _worse(metrics, worst[0]):
                worst = (metrics, reasons, variant)
        # values from the worst variant; ranking metrics: the worst over the variants that have them
        metrics = dict(worst[0], worst_variant=worst[2])
        metrics["spearman"] = min(ranking["spearman"], default=None)
        metrics["auc_delta"] = max(ranking["auc_delta"], default=None)
        metrics["flip_share"] = max(ranking["flip_share"], default=None)
        results.append(OutputResult(name, precision, task, runtime, arch, metrics, tol.as_dict(), not all_reasons, all_reasons))
    return results


def check_refusal(run: Callable[[dict], dict], model, batches: dict) -> tuple[str, str | None]:
    """A fixed-shape artifact must refuse, with one line, a window one event longer than ``max_len``:
    ``(its message, None)`` when it does, else ``("", why not)``."""
    from edgeintent.errors import EdgeIntentError, ShapeRefused

    row = {k: v[:1] for k, v in batches["full_width"][0][1].items()}
    longer = {}
    for spec in model.signature().inputs:
        a = row[spec.name]
        grow = len(spec.dims) > 1 and isinstance(spec.dims[1], str)  # a sequence dim (T_<stream>, T_merged)
        longer[spec.name] = np.concatenate([a, a[:, -1:]], axis=1) if grow else a
    try:
        run(longer)
    except ShapeRefused as exc:
        msg = str(exc)
        return (msg, None) if msg and "\n" not in msg else ("", f"refused a longer window with {len(msg.splitlines())} lines")
    except EdgeIntentError as exc:  # e.g. the aarch64 runner died: a failure, not the artifact's refusal
        return "", f"a longer window failed instead of a refusal: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    except Exception as exc:  # noqa: BLE001 - anything else is a crash, not a refusal
        return "", f"a longer window crashed the runtime ({type(exc).__name__}) instead of a one-line refusal"
    return "", "accepted a window longer than its static shape"


def _worse(a: dict, b: dict) -> bool:
    if a["finite"] != b["finite"]:
        return not a["finite"]
    key = "logit_max_abs" if a.get("logit_max_abs") is not None else "emb_max_abs"
    return a[key] > b[key]


def _why_not(target: str, provider) -> str | None:
    """Why ``provider`` cannot run any artifact of ``target``, or None."""
    return get_target(target).why_not_on(provider)


def _runnable(provider) -> list[str]:
    return [t for t in list_targets() if _why_not(t, provider) is None]


def check_requested(requested: list[str] | None, provider) -> None:
    """An explicitly requested target that ``provider`` cannot run is a usage error naming those it can."""
    for t in requested or []:
        why = _why_not(t, provider)
        if why:
            raise ConfigError(f"{t} has no runtime on {provider.device}: {why}; "
                              f"on {provider.device} use --target {','.join(_runnable(provider))}")  # fmt: skip


def select_artifacts(metas: list, requested: list[str] | None, provider) -> tuple[list, list[dict]]:
    """Split artifacts into those ``provider`` runs and those it skips (with why)."""
    check_requested(requested, provider)
    keep = [m for m in metas if _why_not(m.target, provider) is None]
    skipped = [{"target": m.target, "precision": m.precision,
                "why": f"{m.target} has no runtime on {provider.device}: {_why_not(m.target, provider)}"}
               for m in metas if _why_not(m.target, provider) is not None]  # fmt: skip
    if not keep:
        runnable = _runnable(provider)
        raise ConfigError(f"nothing to run on {provider.device}: export {' or '.join(runnable)} first "
                          f"(edgeintent export BUNDLE --target {','.join(runnable)})")  # fmt: skip
    return keep, skipped


#: target → the function that names the first divergent node of a failing artifact (module, name)
DIAGNOSERS = {"onnx": ("edgeintent.parity.onnx_debug", "first_divergent_node")}


def run_parity(bundle_dir, targets: list[str] | None = None, threads: int = 1, diagnose: bool = True,
               provider=None) -> dict:  # fmt: skip
    """Parity of every exported artifact of ``targets`` (default: all exported); returns the report.

    ``provider`` opens the artifacts (default: this host's runtimes; ``runtimes.provider("cpu-arm")``
    runs them in the aarch64 builds under emulation); the torch reference always runs here.
    """
    import contextlib

    from edgeintent.toolkit.bundle import load_bundle

    provider = provider or HostProvider()
    check_requested(targets, provider)
    provider.prepare()  # fails fast, before any work, when the device is not set up
    bundle = load_bundle(bundle_dir)
    metas = exported_artifacts(bundle, targets)
    if targets:
        missing = [t for t in targets if not any(m.target == t for m in metas)]
        if missing:
            raise ConfigError(f"{bundle_dir}: nothing exported for {', '.join(missing)}; run: edgeintent export {bundle_dir} --target {missing[0]}")
    if not metas:
        raise ConfigError(f"{bundle_dir}: no exported artifacts; run: edgeintent export {bundle_dir} --target all")
    metas, skipped = select_artifacts(metas, targets, provider)
    checked = sorted({m.target for m in metas})
    featurizers = [m for m in metas if get_target(m.target).kind == "featurizer"]
    metas = [m for m in metas if m not in featurizers]
    results = []
    if metas:  # model artifacts: against the torch original (checked itself first)
        import torch

        from edgeintent.toolkit.bundle import load_model
        from edgeintent.toolkit.models.exportable import torch_model, torch_outputs

        model = torch_model(load_model(bundle))
        batches = variant_batches(model, bundle)
        results = check_runner("torch", "fp32", f"torch {torch.__version__}", platform.machine(),
                               lambda f: torch_outputs(model, f), model, bundle, batches)  # fmt: skip
    for meta in metas:
        with contextlib.ExitStack() as stack:
            runner = stack.enter_context(provider.open(artifact_of(bundle, meta), threads=threads))
            tol = tolerance(meta.target, meta.precision, meta.quantize_report, runner.arch)
            res = check_runner(meta.target, meta.precision, runner.runtime, runner.arch, runner.run, model, bundle,
                               batches, tol)  # fmt: skip
            if not get_target(meta.target).dynamic_length:  # fixed shapes: every length above ran padded
                message, why = check_refusal(runner.run, model, batches)
                for r in res:
                    r.metrics["refusal"] = message
                    if why:
                        r.passed = False
                        r.reasons.append(f"refusal: {why}")
        if diagnose and provider.diagnose and meta.target in DIAGNOSERS and not all(r.passed for r in res):
            module, name = DIAGNOSERS[meta.target]
            node = getattr(importlib.import_module(module), name)(bundle, model, meta, batches["trimmed"][0][1])
            for r in res:
                r.first_divergent_node = node
        results += res
    for meta in featurizers:  # the phone kit: bit-identical ids on the raw golden events
        why = get_target(meta.target).unchecked(bundle)
        if why:
            skipped.append({"target": meta.target, "precision": meta.precision, "why": why})
            continue
        results += featurizer_results(get_target(meta.target).check(bundle, meta, provider.device), meta.target,
                                      meta.precision)  # fmt: skip
    if not results:  # only a kit parity cannot check: nothing was compared, so nothing passed
        raise ConfigError(f"{bundle_dir}: nothing to check: " + "; ".join(f"{k['target']}: {k['why']}" for k in skipped))
    report = {
        "bundle": str(bundle_dir),
        "model": bundle.config["model"]["name"],
        "device": provider.device,
        "golden_rows": len(GoldenSet.of(bundle)),
        "variants": list(VARIANTS),
        "passed": all(r.passed for r in results),
        "results": [r.as_dict() for r in results],
        "targets": [t for t in list_targets() if t in checked],
    }
    if skipped or provider.device != "host":
        report["skipped"] = skipped
    if provider.device != "host":
        report["emulation"] = provider.info()
    return report


def featurizer_results(checks: list[dict], target: str, precision: str = "fp32") -> list[OutputResult]:
    """Parity rows of a featurizer check (one per stream; see :mod:`edgeintent.kit.conformance`)."""
    out = []
    for c in checks:
        metrics = {"prob_max_abs": None, "logit_max_abs": None, "spearman": None, "auc_delta": None, "flip_share": None,
                   "finite": True, **c["metrics"]}  # fmt: skip
        out.append(OutputResult(target, precision, c.get("output", f"ids_{c['stream']}"), c["runtime"], c["arch"], metrics,
                                {"ids": "bit-identical", "lengths": "bit-identical", "ages": "bit-identical"},
                                c["passed"], list(c["reasons"])))  # fmt: skip
    return out


def featurizer_dump_report(bundle_dir, dump) -> dict:
    """Parity of an app's own featurizer port: its dump of the kit's ``cases.bin`` (the runner's output
    format) against Python's ids on the bundle's raw golden events."""
    from pathlib import Path

    from edgeintent.errors import KitError
    from edgeintent.kit.conformance import check_output
    from edgeintent.toolkit.bundle import load_bundle
    from edgeintent.toolkit.golden_events import load_golden_events

    bundle = load_bundle(bundle_dir)
    raw = load_golden_events(bundle)
    path = Path(dump)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KitError(f"{dump}: cannot read the featurizer dump ({exc.strerror or exc})") from None
    checks = [dict(c, runtime=f"featurizer dump {path.name}", arch="app") for c in check_output(data, str(dump), raw, bundle.spec)]
    results = featurizer_results(checks, "featurizer-dump")
    return {"bundle": str(bundle_dir), "model": bundle.config["model"]["name"], "device": "app",
            "golden_rows": int(len(raw["case"])), "variants": ["raw_events"], "passed": all(r.passed for r in results),
            "results": [r.as_dict() for r in results], "targets": ["featurizer-dump"]}  # fmt: skip
