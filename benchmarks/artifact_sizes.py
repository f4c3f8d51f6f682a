"""Artifact bytes per bundle with the ONNX exporter's :func:`~edgeintent.exporters.onnx.compact` and without it.

    python benchmarks/artifact_sizes.py --bundle find=B1 --bundle dipn=B2 … --json [--write-results]

For every bundle and every artifact that goes through the ONNX exporter (ONNX fp32, fp16, dynamic-int8;
MNN fp32, fp16: MNN converts the exported ONNX graph), both variants are built in the same run: the
exporter as it is (names shortened, duplicated constants merged) and with ``compact`` replaced by a no-op
(the TorchScript exporter's own names). For the ONNX artifacts, both are run by onnxruntime on the
bundle's golden rows and the largest output difference between the two is reported (0 expected:
``compact`` only renames and merges equal tensors).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _results  # noqa: E402

ARTIFACTS = (("onnx", "fp32"), ("onnx", "fp16"), ("onnx", "dynamic-int8"), ("mnn", "fp32"), ("mnn", "fp16"))


def build(model, bundle, target: str, mode: str, out: Path) -> None:
    from edgeintent.exporters import get_target
    from edgeintent.quantization import get_recipe
    from edgeintent.toolkit.golden import golden_samples

    if mode == "fp32" or (target == "onnx" and mode == "fp16"):
        get_target(target).export(model, bundle.spec, golden_samples(bundle.golden), out, mode)
    else:
        get_recipe(target, mode).build(model, bundle, [], out)


def ort_outputs(path: Path, feeds: dict, precision: str) -> dict:
    """The artifact's outputs from the toolkit's own onnxruntime session (fp16 graphs at its safe level)."""
    from edgeintent.runtimes.sessions import OrtSession

    return OrtSession(str(path), "fp16" if precision == "fp16" else "fp32", 1).run(feeds)


def measure(name: str, path: str, tmp: Path) -> list[dict]:
    import edgeintent.exporters.onnx as onnx_exp
    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.golden import golden_samples
    from edgeintent.toolkit.models.exportable import feeds

    bundle = load_bundle(path)
    model = load_model(bundle).eval()
    samples = golden_samples(bundle.golden)
    f = {k: np.asarray(v) for k, v in feeds(model, samples, np.arange(len(samples))).items()}
    rows = []
    real = onnx_exp.compact
    for target, mode in ARTIFACTS:
        sizes, files = {}, {}
        for variant in ("compact", "exporter names"):
            onnx_exp.compact = real if variant == "compact" else (lambda proto, original=None: proto)
            try:
                out = tmp / f"{name}-{target}-{mode}-{variant.replace(' ', '_')}.{target}"
                build(model, bundle, target, mode, out)
            finally:
                onnx_exp.compact = real
            sizes[variant], files[variant] = out.stat().st_size, out
        row = {"model": name, "target": target, "artifact": mode, "bytes": sizes["compact"],
               "bytes_exporter_names": sizes["exporter names"],
               "ratio": round(sizes["compact"] / sizes["exporter names"], 3)}
        if target == "onnx":
            a, b = ort_outputs(files["compact"], f, mode), ort_outputs(files["exporter names"], f, mode)
            row["max_abs_diff"] = float(max(np.max(np.abs(a[k] - b[k])) for k in a))
        rows.append(row)
    return rows


def table(r: dict) -> str:
    out = ["| model | artifact | bytes | bytes with the exporter's names | ratio | max abs Δ (ONNX Runtime) |",
           "|---|---|---|---|---|---|"]
    for x in r["rows"]:
        d = "" if "max_abs_diff" not in x else f"{x['max_abs_diff']:.1e}"
        out.append(f"| {x['model']} | {x['target']} {x['artifact']} | {x['bytes']:,} | {x['bytes_exporter_names']:,} | "
                   f"{x['ratio']:.3f} | {d} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", action="append", required=True, metavar="NAME=DIR")
    ap.add_argument("--name", default="artifact_sizes")
    _results.add_args(ap)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.bundle:
            name, _, path = item.partition("=")
            rows += measure(name, path, Path(tmp))
    result = {"rows": rows}
    _results.emit(args.name, result, args, table=table)
    if not args.json:
        print(table(result))


if __name__ == "__main__":
    main()
