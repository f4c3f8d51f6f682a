"""ONNX recipes: onnxruntime's dynamic and static int8 quantizers and the fp16 converter."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgeintent.quantization import register_recipe


def fp32_onnx(model, bundle):
    from edgeintent.exporters.onnx import export_proto
    from edgeintent.toolkit.golden import golden_samples

    return export_proto(model, bundle.spec, golden_samples(bundle.golden), "fp32")


def _clear_value_info(path: Path) -> None:
    """Drop the quantizer's ``graph.value_info`` (shape annotations of every intermediate tensor), as
    the fp32 export does: onnxruntime infers them again, and they cost more than int8 weights save
    (a static-int8 dipn was 4 % larger than its fp32 graph with them); then shorten the names the
    quantizer added (``…_quantized``, ``…_scale``) as the exporter does (``exporters.onnx.compact``)."""
    import onnx

    from edgeintent.exporters.onnx import compact, serialize

    proto = onnx.load(str(path))
    del proto.graph.value_info[:]
    compact(proto)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(serialize(proto))
    tmp.replace(path)


def _onnx_dynamic(weight_type: str):
    def build(model, bundle, calib, out: Path) -> dict:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from edgeintent.exporters.onnx import serialize

        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "fp32.onnx"
            src.write_bytes(serialize(fp32_onnx(model, bundle)))
            quantize_dynamic(src, out, weight_type=getattr(QuantType, weight_type))
        _clear_value_info(out)
        return {"quantization": f"onnxruntime quantize_dynamic, {weight_type} weights"}

    return build


register_recipe("onnx", "dynamic-int8", "quantize_dynamic, QInt8 weights")(_onnx_dynamic("QInt8"))
register_recipe("onnx", "dynamic-uint8", "quantize_dynamic, QUInt8 weights")(_onnx_dynamic("QUInt8"))

#: static int8 touches only these ops: quantizing the activations around the additive attention
#: mask (−1e4) makes a scale of ≈ 39 that rounds every attention logit away
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
        src.write_bytes(serialize(fp32_onnx(model, bundle)))
        quantize_static(src, out, Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=list(STATIC_OPS),
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=False)  # fmt: skip
    _clear_value_info(out)
    return {"quantization": f"onnxruntime quantize_static QDQ on {', '.join(STATIC_OPS)}",
            "calibration_rows": int(sum(len(next(iter(f.values()))) for f in calib))}  # fmt: skip


@register_recipe("onnx", "fp16", "fp16 weights and arithmetic, fp32 inputs/outputs")
def _onnx_fp16(model, bundle, calib, out: Path) -> dict:
    from edgeintent.exporters.onnx import serialize, to_fp16

    out.write_bytes(serialize(to_fp16(fp32_onnx(model, bundle))))
    return {"quantization": "onnxruntime.transformers.float16, keep_io_types"}
