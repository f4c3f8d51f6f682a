"""Quantization recipes per target, each judged on the bundle's validation users.

A recipe writes one artifact for a target (``model.<mode><ext>`` beside the fp32 one). The exported
graph is quantized, never the torch model (torch-side quantization does not export usefully):

| target | mode | what |
|---|---|---|
| onnx | ``dynamic-int8`` / ``dynamic-uint8`` | onnxruntime ``quantize_dynamic`` (MatMul/Gemm → MatMulInteger, LSTM → DynamicQuantizeLSTM; GRU stays fp32) with QInt8 / QUInt8 weights |
| onnx | ``static-int8`` | ``quantize_static`` (QDQ) calibrated on training windows, only MatMul/Gemm/Gather: with the default op set the additive −1e4 mask sets an activation scale of ≈ 39 that wipes out the attention logits |
| onnx | ``fp16`` | fp16 weights and arithmetic, fp32 inputs/outputs |
| coreml | ``fp16``, ``weight-int8``, ``palettize-6``, ``palettize-4`` | compute precision fp16; ``coremltools.optimize`` linear int8 / k-means palettization with ``weight_threshold=0`` (the default 2048 skips most of these small tensors) |
| mnn | ``fp16``, ``weight-int8`` | converter ``--fp16`` / ``--weightQuantBits 8`` (RNN ops are not quantized) |

``quantize_bundle`` evaluates each candidate in its real runtime on the validation users: size, AUC
per task and its delta to fp32 torch, the share of decisions that flip, max |Δ| of logits, and
latency (batch 1, one thread, in a fresh process). ``mode="auto"`` tries every recipe of the target
and keeps the smallest artifact whose AUC drop stays within the budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeintent.errors import ConfigError
from edgeintent.exporters import get_target, install_tree
from edgeintent.exporters.common import ExportError, feeds, output_names, torch_model, torch_outputs

CALIBRATION_ROWS = 512


@dataclass(frozen=True)
class Recipe:
    target: str
    mode: str
    description: str
    build: Callable  # (model, bundle, calib_feeds, out) -> extra meta


_RECIPES: dict[tuple[str, str], Recipe] = {}


def register_recipe(target: str, mode: str, description: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        if (target, mode) in _RECIPES:
            raise ValueError(f"quantization recipe {target}/{mode} is already registered")
        _RECIPES[(target, mode)] = Recipe(target, mode, description, fn)
        return fn

    return deco


def recipes(target: str | None = None) -> list[Recipe]:
    return [r for (t, _), r in _RECIPES.items() if target is None or t == target]


#: modes people ask for that are refused, with the reason
REFUSED = {
    ("onnx", "static-int8-all-ops"): "static int8 over every op quantizes the activations around the additive −1e4 "
    "attention mask: the activation scale becomes ≈ 39 and every attention logit rounds away (DIPN real-time Spearman "
    "0.32 measured); use static-int8, which quantizes only MatMul/Gemm/Gather",
}


def get_recipe(target: str, mode: str) -> Recipe:
    get_target(target)
    if (target, mode) in REFUSED:
        raise ConfigError(f"{target}/{mode} is refused: {REFUSED[(target, mode)]}")
    if (target, mode) not in _RECIPES:
        modes = ", ".join(r.mode for r in recipes(target))
        raise ConfigError(f"target {target} has no quantization mode {mode!r}; choose one of: {modes}, auto")
    return _RECIPES[(target, mode)]


# -- ONNX ---------------------------------------------------------------------------------------


def _fp32_onnx(model, bundle):
    from edgeintent.exporters.onnx import export_proto
    from edgeintent.toolkit.training.trainer import golden_samples

    return export_proto(model, bundle.spec, golden_samples(bundle.golden), "fp32")


def _clear_value_info(path: Path) -> None:
    """Drop the quantizer's ``graph.value_info`` (shape annotations of every intermediate tensor), as
    the fp32 export does: onnxruntime infers them again, and they cost more than int8 weights save
    (a static-int8 dipn was 4 % larger than its fp32 graph with them)."""
    import onnx

    from edgeintent.exporters.onnx import serialize

    proto = onnx.load(str(path))
    del proto.graph.value_info[:]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(serialize(proto))
    tmp.replace(path)


def _onnx_dynamic(weight_type: str):
    def build(model, bundle, calib, out: Path) -> dict:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from edgeintent.exporters.onnx import serialize

        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "fp32.onnx"
            src.write_bytes(serialize(_fp32_onnx(model, bundle)))
            quantize_dynamic(src, out, weight_type=getattr(QuantType, weight_type))
        _clear_value_info(out)
        return {"quantization": f"onnxruntime quantize_dynamic, {weight_type} weights"}

    return build


register_recipe("onnx", "dynamic-int8", "quantize_dynamic, QInt8 weights")(_onnx_dynamic("QInt8"))
register_recipe("onnx", "dynamic-uint8", "quantize_dynamic, QUInt8 weights")(_onnx_dynamic("QUInt8"))

#: static int8 touches only these ops: quantizing the activations around the additive attention
#: mask (−1e4) makes a scale of ≈ 39 that rounds every attention logit away (Spearman 0.32 here)
STATIC_OPS = ("MatMul", "Gemm", "Gather")


@register_recipe("onnx", "static-int8", "quantize_static (QDQ) on MatMul/Gemm/Gather, calibrated on training windows")
def _onnx_static(model, bundle, calib, out: Path) -> dict:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgeintent.exporters.onnx import serialize

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calib)

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fp32.onnx"
        src.write_bytes(serialize(_fp32_onnx(model, bundle)))
        quantize_static(src, out, Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=list(STATIC_OPS),
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=False)  # fmt: skip
    _clear_value_info(out)
    return {"quantization": f"onnxruntime quantize_static QDQ on {', '.join(STATIC_OPS)}",
            "calibration_rows": int(sum(len(next(iter(f.values()))) for f in calib))}  # fmt: skip


@register_recipe("onnx", "fp16", "fp16 weights and arithmetic, fp32 inputs/outputs")
def _onnx_fp16(model, bundle, calib, out: Path) -> dict:
    from edgeintent.exporters.onnx import serialize, to_fp16

    out.write_bytes(serialize(to_fp16(_fp32_onnx(model, bundle))))
    return {"quantization": "onnxruntime.transformers.float16, keep_io_types"}


# -- CoreML -------------------------------------------------------------------------------------


def _coreml_base(model, bundle, precision: str = "fp32"):
    """The fp32 ML program to compress: the bundle's exported one when present (conversion is the
    slow step), else a fresh conversion of ``model``."""
    from edgeintent.exporters import exported_artifacts
    from edgeintent.exporters.coreml import _quiet_import, convert
    from edgeintent.toolkit.training.trainer import golden_samples

    if precision == "fp32":
        for meta in exported_artifacts(bundle, ["coreml"]):
            if meta["precision"] == "fp32":
                return _quiet_import().models.MLModel(str(bundle.file(meta["artifact"] + "/Manifest.json").parent),
                                                      skip_model_load=True)  # fmt: skip
    return convert(model, bundle.spec, golden_samples(bundle.golden), precision)


def _save_mlmodel(mlmodel, out: Path) -> None:
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        mlmodel.save(str(out))


@register_recipe("coreml", "fp16", "compute precision fp16")
def _coreml_fp16(model, bundle, calib, out: Path) -> dict:
    _save_mlmodel(_coreml_base(model, bundle, "fp16"), out)
    return {"quantization": "compute_precision FLOAT16", "compute_precision": "fp16"}


def _coreml_compress(kind: str, nbits: int | None = None):
    def build(model, bundle, calib, out: Path) -> dict:
        import contextlib
        import io
        import warnings

        import coremltools.optimize.coreml as cto

        mlmodel = _coreml_base(model, bundle, "fp32")
        if kind == "linear":
            op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=0)
            fn = cto.linear_quantize_weights
        else:
            op = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, weight_threshold=0)
            fn = cto.palettize_weights
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            compressed = fn(mlmodel, cto.OptimizationConfig(global_config=op))
        _save_mlmodel(compressed, out)
        what = "linear int8 weights" if kind == "linear" else f"{nbits}-bit k-means palettized weights"
        return {"quantization": f"coremltools.optimize: {what}, weight_threshold=0", "compute_precision": "fp32"}

    return build


register_recipe("coreml", "weight-int8", "linear int8 weights (coremltools.optimize)")(_coreml_compress("linear"))
register_recipe("coreml", "palettize-6", "6-bit k-means palettized weights")(_coreml_compress("palettize", 6))
register_recipe("coreml", "palettize-4", "4-bit k-means palettized weights")(_coreml_compress("palettize", 4))


# -- MNN ----------------------------------------------------------------------------------------


def _mnn(flags: list[str], what: str):
    def build(model, bundle, calib, out: Path) -> dict:
        from edgeintent.exporters.mnn import convert_onnx
        from edgeintent.exporters.onnx import serialize

        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "fp32.onnx"
            src.write_bytes(serialize(_fp32_onnx(model, bundle)))
            convert_onnx(src, out, native_rnn=True, extra_flags=flags)
        return {"quantization": what, "converter_flags": ["--useOriginRNNImpl", *flags]}

    return build


register_recipe("mnn", "fp16", "converter --fp16 (fp16 weights)")(_mnn(["--fp16"], "MNN converter --fp16"))
register_recipe("mnn", "weight-int8", "converter --weightQuantBits 8")(
    _mnn(["--weightQuantBits", "8"], "MNN converter --weightQuantBits 8 (RNN ops stay fp32)")
)


# -- evaluation ---------------------------------------------------------------------------------

_LATENCY = """
import json, sys, time
import numpy as np
from edgeintent.exporters import get_target
meta = json.loads(sys.argv[2]); f = dict(np.load(sys.argv[3]))
runner = get_target(meta["target"]).runner(__import__("pathlib").Path(sys.argv[1]), meta, threads=1)
runs = int(sys.argv[4])
for _ in range(20):
    runner.run(f)
t = []
for _ in range(runs):
    t0 = time.perf_counter(); runner.run(f); t.append(time.perf_counter() - t0)
print(json.dumps({"p50_ms": float(np.percentile(t, 50) * 1e3), "mean_ms": float(np.mean(t) * 1e3)}))
"""


def latency(path: Path, meta: dict, one_row: dict[str, np.ndarray], runs: int = 200) -> dict:
    """Batch-1 latency of an artifact in a fresh process with one thread (p50 and mean, ms)."""
    if meta["target"] == "coreml":
        return {"p50_ms": None, "mean_ms": None, "why": "no CoreML runtime here (the MIL reference is not timed)"}
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "feeds.npz"
        np.savez(npz, **one_row)
        env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, "-c", _LATENCY, str(path), json.dumps(meta), str(npz), str(runs)],
                              capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    if proc.returncode != 0:
        raise ExportError(f"latency run of {meta['artifact']} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_all(runner, model, samples, idx: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
    outs: dict[str, list] = {o: [] for o in output_names(model)}
    for lo in range(0, len(idx), batch):
        got = runner.run(feeds(model, samples, idx[lo : lo + batch]))
        for o in outs:
            outs[o].append(np.asarray(got[o], np.float64).reshape(-1))
    return {o: np.concatenate(v) for o, v in outs.items()}


def _evaluate(model, samples, idx, ref: dict, got: dict) -> dict:
    from edgeintent.parity import _thresholds
    from edgeintent.toolkit.training.metrics import auc

    tasks = {}
    for t in model.tasks:
        obs = samples.observed[t][idx] if t in samples.observed else np.zeros(len(idx), bool)
        y = samples.labels[t][idx][obs] if t in samples.labels else np.empty(0)
        rl, gl = ref[f"logit_{t}"], got[f"logit_{t}"]
        rp, gp = ref[f"prob_{t}"], got[f"prob_{t}"]
        finite = bool(np.isfinite(gl).all())
        a_ref = auc(y, rl[obs]) if len(y) and 0 < y.mean() < 1 else None
        a_got = auc(y, gl[obs]) if a_ref is not None and finite else None
        thr = _thresholds(rp)
        tasks[t] = {
            "auc": a_got,
            "auc_fp32": a_ref,
            "auc_delta": None if a_got is None else float(a_got - a_ref),
            "flip_share": float(np.mean([(np.nan_to_num(gp, nan=-1) >= x) != (rp >= x) for x in thr])),
            "logit_max_abs": float(np.max(np.abs(gl - rl))) if finite else float("inf"),
            "prob_max_abs": float(np.max(np.abs(gp - rp))) if finite else float("inf"),
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
    from edgeintent.toolkit.bundle import add_files, canonical_json, load_bundle
    from edgeintent.toolkit.training.trainer import evaluation_rows, load_model

    say = say or (lambda *_: None)
    if budget_auc < 0:
        raise ConfigError(f"--budget-auc must be ≥ 0, got {budget_auc}")
    cands = recipes(target) if mode == "auto" else [get_recipe(target, mode)]
    why = get_target(target).missing()
    if why:
        raise ExportError(f"cannot quantize for {target}: {why}")
    bundle = load_bundle(bundle_dir)
    model = torch_model(load_model(bundle))
    samples, idx, source, users = evaluation_rows(bundle, model, source)
    ref = _run_torch(model, samples, idx)
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
            meta = {"target": target, "precision": r.mode, "artifact": str(out), "inputs": [{"name": n} for n in model.input_names()],
                    "outputs": output_names(model)}  # fmt: skip
            runner = get_target(target).runner(out, meta, threads=1)
            tasks = _evaluate(model, samples, idx, ref, _run_all(runner, model, samples, idx))
            lat = latency(out, meta, one, runs)
            drop = max((-(v["auc_delta"]) for v in tasks.values() if v["auc_delta"] is not None), default=float("inf"))
            rows.append({"mode": r.mode, "bytes": size, "weight_bytes": weight_bytes, "size_ratio": size / fp32_size, "tasks": tasks, "latency": lat,
                         "max_auc_drop": drop, "within_budget": drop <= budget_auc, "extra": extra, "_out": out})  # fmt: skip
        chosen = rows if mode != "auto" else _pick(rows)
        report = {"bundle": str(bundle_dir), "target": target, "mode": mode, "data": source, "users": users,
                  "rows": int(len(idx)), "budget_auc": budget_auc, "fp32_bytes": fp32_size,
                  "candidates": [{k: v for k, v in row.items() if k != "_out"} for row in rows],
                  "installed": [row["mode"] for row in chosen]}  # fmt: skip
        if mode == "auto":
            report["choice"] = _explain(rows, chosen, budget_auc)
        for row in chosen:
            extra = dict(row["extra"], quantize_report={"budget_auc": budget_auc, "tasks": row["tasks"], "data": source})
            install_tree(bundle, target, row["mode"], model, row["_out"], extra)
    add_files(bundle.path, {f"exports/{target}/quantize-report.json": canonical_json(report)})
    return report


def _calibration_rows(samples, eval_idx: np.ndarray, n: int = CALIBRATION_ROWS, seed: int = 0) -> np.ndarray:
    """Up to ``n`` training windows (rows not evaluated on; all rows if the source has no others)."""
    rest = np.setdiff1d(np.arange(len(samples)), eval_idx)
    pool = rest if len(rest) else eval_idx
    return np.sort(np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False))


def _run_torch(model, samples, idx, batch: int = 2048) -> dict[str, np.ndarray]:
    outs: dict[str, list] = {}
    for lo in range(0, len(idx), batch):
        for k, v in torch_outputs(model, feeds(model, samples, idx[lo : lo + batch])).items():
            outs.setdefault(k, []).append(np.asarray(v, np.float64))
    return {k: np.concatenate(v) for k, v in outs.items()}


def _fp32_size(model, bundle, target: str) -> int:
    from edgeintent.exporters import exported_artifacts

    for meta in exported_artifacts(bundle, [target]):
        if meta["precision"] == "fp32":
            return int(meta["bytes"])
    with tempfile.TemporaryDirectory() as tmp:
        from edgeintent.toolkit.training.trainer import golden_samples

        out = Path(tmp) / get_target(target).artifact_name("fp32")
        get_target(target).export(model, bundle.spec, golden_samples(bundle.golden), out, "fp32")
        return sum(p.stat().st_size for p in ([out] if out.is_file() else out.rglob("*")) if p.is_file())


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
        text += "; over budget: " + ", ".join(f"{r['mode']} (AUC drop {r['max_auc_drop']:.4f})" for r in out)
    return text
