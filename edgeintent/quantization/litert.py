"""LiteRT recipes: ai-edge-quantizer (a dependency of litert-torch, in the converter's environment) on the
fp32 ``.tflite``: dynamic-range int8 (int8 weights, activations quantized on the fly), weight-only int8
(int8 weights dequantized to fp32) and fp16 weights (float casting of FULLY_CONNECTED and EMBEDDING_LOOKUP
weights, dequantized to fp32: the quantizer's float casting supports no other op here)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgeintent.quantization import register_recipe


def _fp32_tflite(model, bundle, tmp: Path) -> Path:
    """The bundle's exported fp32 ``.tflite`` (conversion is the slow step), else a fresh conversion."""
    from edgeintent.exporters import exported_artifacts
    from edgeintent.exporters.litert import convert
    from edgeintent.toolkit.golden import golden_samples

    for meta in exported_artifacts(bundle, ["litert"]):
        if meta.precision == "fp32":
            return bundle.file(meta.artifact)
    out = tmp / "fp32.tflite"
    convert(model, bundle.spec, golden_samples(bundle.golden), out)
    return out


def _quantizer(recipe: str, what: str):
    def build(model, bundle, calib, out: Path) -> dict:
        from edgeintent.exporters.litert import run_tool

        with tempfile.TemporaryDirectory(prefix="edgeintent-litert-q-") as tmp:
            src = _fp32_tflite(model, bundle, Path(tmp))
            versions = run_tool(["quantize", str(src), str(out), recipe], "quantization")
        return {"quantization": f"ai-edge-quantizer recipe.{recipe}(): {what}", "quantizer": versions}

    return build


register_recipe("litert", "dynamic-int8", "ai-edge-quantizer dynamic_wi8_afp32 (int8 weights, dynamic int8 activations)")(
    _quantizer("dynamic_wi8_afp32", "int8 weights, activations quantized at run time"))
register_recipe("litert", "weight-int8", "ai-edge-quantizer weight_only_wi8_afp32 (int8 weights, fp32 arithmetic)")(
    _quantizer("weight_only_wi8_afp32", "int8 weights dequantized to fp32"))
register_recipe("litert", "fp16", "ai-edge-quantizer float casting: fp16 weights (fully connected, embeddings), fp32 arithmetic")(
    _quantizer("fp16_weights", "fp16 weights of FULLY_CONNECTED and EMBEDDING_LOOKUP (float casting), fp32 arithmetic"))
