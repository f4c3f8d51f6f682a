"""LiteRT beside onnxruntime on the same bundles, in one run: conversion cost, artifact size, batch-1 latency.

    python benchmarks/litert.py --json                 # trains a dipn and an iidn bundle first (sim:400:3, 1 epoch)
    python benchmarks/litert.py --models dipn --runs 200

Per model: export to onnx and to litert (wall seconds and CPU seconds, the converter subprocess included),
then quantize the .tflite with ai-edge-quantizer (dynamic-int8). Latency: one fresh process per variant
(``edgeintent.runtimes.child.measure_latency``: one thread, pinned to one CPU), on the same full-width golden
row: onnxruntime, LiteRT with its XNNPACK delegate, LiteRT with built-in kernels only, and LiteRT dynamic-int8.
Ratios are to onnxruntime's p50 in the same run; the machine is shared, so read the ratios.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)


def _cpu_s() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn):
    w, c = time.perf_counter(), _cpu_s()
    out = fn()
    return out, round(time.perf_counter() - w, 1), round(_cpu_s() - c, 1)


def one_model(name: str, source: str, tmp: Path, runs: int) -> dict:
    import numpy as np

    from edgeintent.exporters import artifact_of, export_bundle, exported_artifacts, get_target
    from edgeintent.quantization import get_recipe
    from edgeintent.quantization.select import candidate_artifact
    from edgeintent.runtimes import Artifact
    from edgeintent.runtimes.child import measure_latency
    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.golden import golden_samples
    from edgeintent.toolkit.models.exportable import feeds, torch_model
    from edgeintent.toolkit.training.trainer import TrainConfig, train_bundle

    path = tmp / name
    train_bundle(name, source, path, TrainConfig(epochs=1, threads=1))
    _, onnx_wall, onnx_cpu = _timed(lambda: export_bundle(path, "onnx"))
    _, lt_wall, lt_cpu = _timed(lambda: export_bundle(path, "litert"))
    bundle = load_bundle(path)
    model = torch_model(load_model(bundle))
    metas = {m.target: m for m in exported_artifacts(bundle, ["onnx", "litert"])}
    q_out = tmp / f"{name}.dynamic-int8.tflite"
    extra, q_wall, q_cpu = _timed(lambda: get_recipe("litert", "dynamic-int8").build(model, bundle, None, q_out))
    g = golden_samples(bundle.golden)
    full = np.flatnonzero(np.all([g.length[s] == g.x[s].shape[1] for s in model.streams], axis=0))
    row = feeds(model, g, full[:1] if len(full) else np.arange(1))
    lt = artifact_of(bundle, metas["litert"])
    variants = {
        "onnxruntime": artifact_of(bundle, metas["onnx"]),
        "litert (XNNPACK)": lt,
        "litert (built-in kernels)": Artifact("litert-builtin", lt.path, lt.precision, lt.inputs, lt.outputs, "litert"),
        "litert dynamic-int8 (XNNPACK)": candidate_artifact("litert", "dynamic-int8", q_out, model, bundle, extra),
    }
    sizes = {"onnxruntime": metas["onnx"].bytes, "litert (XNNPACK)": metas["litert"].bytes,
             "litert (built-in kernels)": metas["litert"].bytes, "litert dynamic-int8 (XNNPACK)": q_out.stat().st_size}  # fmt: skip
    rows = []
    for label, art in variants.items():
        lat = measure_latency(art, row, runs)
        rows.append({"variant": label, "bytes": sizes[label], "p50_ms": lat["p50_ms"], "mean_ms": lat["mean_ms"]})
    base = rows[0]["p50_ms"]
    for r in rows:
        r["p50_vs_onnxruntime"] = r["p50_ms"] / base
    from edgeintent.runtimes import open_artifact

    with open_artifact(lt) as s:
        s.run(row)  # the interpreter applies its delegate on the first run
        info = s._impl.info()
    return {"model": name, "windows": {s: int(g.x[s].shape[1]) for s in model.streams},
            "export_onnx": {"wall_s": onnx_wall, "cpu_s": onnx_cpu},
            "export_litert": {"wall_s": lt_wall, "cpu_s": lt_cpu, **metas["litert"].extra["export_seconds"]},
            "quantize_litert_dynamic_int8": {"wall_s": q_wall, "cpu_s": q_cpu},
            "litert_ops": info["ops"], "litert_delegate_nodes": info["delegate_nodes"], "rows": rows}  # fmt: skip


def table(result: dict) -> str:
    lines = ["| model | variant | size (KB) | p50 (ms) | × onnxruntime p50 |", "|---|---|---:|---:|---:|"]
    for m in result["models"]:
        for r in m["rows"]:
            lines.append(f"| {m['model']} | {r['variant']} | {r['bytes'] / 1024:.0f} | {r['p50_ms']:.3f} | {r['p50_vs_onnxruntime']:.2f} |")
    lines += ["", "| model | windows | onnx export wall / CPU (s) | litert export wall / CPU (s) | dynamic-int8 wall / CPU (s) | TFLite ops | XNNPACK delegate nodes |",
              "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for m in result["models"]:
        e, q, o = m["export_litert"], m["quantize_litert_dynamic_int8"], m["export_onnx"]
        win = ", ".join(f"{s} {n}" for s, n in m["windows"].items())
        lines.append(f"| {m['model']} | {win} | {o['wall_s']} / {o['cpu_s']} | {e['wall_s']} / {e['cpu_s']} | "
                     f"{q['wall_s']} / {q['cpu_s']} | {m['litert_ops']} | {m['litert_delegate_nodes']} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="dipn,iidn")
    ap.add_argument("--source", default="sim:400:3")
    ap.add_argument("--runs", type=int, default=300)
    _results.add_args(ap)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeintent-litert-bench-") as tmp:
        models = [one_model(m.strip(), args.source, Path(tmp), args.runs) for m in args.models.split(",") if m.strip()]
    out = {"source": args.source, "training": "1 epoch", "runs": args.runs, "models": models}
    _results.emit("litert", out, args, table=table)
    if not args.json:
        print(table(out))


if __name__ == "__main__":
    main()
