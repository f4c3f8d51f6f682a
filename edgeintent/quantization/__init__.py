"""Quantization recipes per target, each judged on the bundle's validation users.

A recipe writes one artifact for a target (``model.<mode><ext>`` beside the fp32 one). The exported
graph is quantized, never the torch model (torch-side quantization does not export usefully):

| target | mode | what |
|---|---|---|
| onnx | ``dynamic-int8`` / ``dynamic-uint8`` | onnxruntime ``quantize_dynamic`` (MatMul/Gemm → MatMulInteger, LSTM → DynamicQuantizeLSTM; GRU stays fp32) with QInt8 / QUInt8 weights |
| onnx | ``static-int8`` | ``quantize_static`` (QDQ) calibrated on training windows, only MatMul/Gemm/Gather (quantizing the activations around the additive −1e4 attention mask rounds the attention logits away) |
| onnx | ``fp16`` | fp16 weights and arithmetic, fp32 inputs/outputs |
| coreml | ``fp16``, ``weight-int8``, ``palettize-6``, ``palettize-4`` | compute precision fp16; ``coremltools.optimize`` linear int8 / k-means palettization with ``weight_threshold=0`` (the default 2048 skips most of these small tensors) |
| mnn | ``fp16``, ``weight-int8`` | converter ``--fp16`` / ``--weightQuantBits 8`` (RNN ops are not quantized) |

One module per target registers its recipes (``onnx.py``, ``coreml.py``, ``mnn.py``); ``select.py``
builds, evaluates (in the real runtime, with parity's functional comparisons) and installs them, and
picks the smallest within an AUC budget (``mode="auto"``); ``capabilities.py`` joins targets and recipes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgeintent.errors import ConfigError
from edgeintent.exporters import get_target
from edgeintent.registry import Registry


@dataclass(frozen=True)
class Recipe:
    target: str
    mode: str
    description: str
    build: Callable  # (model, bundle, calib_feeds, out) -> extra meta


RECIPES: Registry[Recipe] = Registry("quantization recipe", modules=tuple(f"{__name__}.{m}" for m in ("onnx", "coreml", "mnn", "litert")))


def register_recipe(target: str, mode: str, description: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        RECIPES.register(f"{target}/{mode}", Recipe(target, mode, description, fn))
        return fn

    return deco


def recipes(target: str | None = None) -> list[Recipe]:
    return [r for r in RECIPES.values() if target is None or r.target == target]


#: modes people ask for that are refused, with the reason
REFUSED = {
    ("onnx", "static-int8-all-ops"): "static int8 over every op quantizes the activations around the additive −1e4 "
    "attention mask: the activation scale becomes ≈ 39 and every attention logit rounds away; use static-int8, "
    "which quantizes only MatMul/Gemm/Gather",
}


#: targets with no quantization at all, with the reason (``quantize`` refuses them in one line)
UNQUANTIZABLE = {
    "executorch": "ExecuTorch's PT2E int8 (XNNPACKQuantizer, prepare_pt2e/convert_pt2e) does not go through these "
    "graphs: its observers land on the boolean length masks, and a converted program with scan recurrences cannot "
    "be exported again; no int8 recipe is parity-checked (docs/executorch.md)",
}


def check_quantizable(target: str) -> None:
    get_target(target)
    if target in UNQUANTIZABLE:
        raise ConfigError(f"target {target} has no quantization: {UNQUANTIZABLE[target]}")


def get_recipe(target: str, mode: str) -> Recipe:
    check_quantizable(target)
    if (target, mode) in REFUSED:
        raise ConfigError(f"{target}/{mode} is refused: {REFUSED[(target, mode)]}")
    if f"{target}/{mode}" not in RECIPES:
        modes = ", ".join(r.mode for r in recipes(target))
        raise ConfigError(f"target {target} has no quantization mode {mode!r}; choose one of: {modes}, auto")
    return RECIPES.get(f"{target}/{mode}")
