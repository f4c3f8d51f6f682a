"""MNN recipes: the converter's fp16 weights and 8-bit weight quantization."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgeintent.quantization import register_recipe
from edgeintent.quantization.onnx import fp32_onnx


def _mnn(flags: list[str], what: str):
    def build(model, bundle, calib, out: Path) -> dict:
        from edgeintent.exporters.mnn import convert_onnx
        from edgeintent.exporters.onnx import serialize

        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "fp32.onnx"
            src.write_bytes(serialize(fp32_onnx(model, bundle)))
            convert_onnx(src, out, native_rnn=True, extra_flags=flags)
        return {"quantization": what, "converter_flags": ["--useOriginRNNImpl", *flags]}

    return build


register_recipe("mnn", "fp16", "converter --fp16 (fp16 weights)")(_mnn(["--fp16"], "MNN converter --fp16"))
register_recipe("mnn", "weight-int8", "converter --weightQuantBits 8")(
    _mnn(["--weightQuantBits", "8"], "MNN converter --weightQuantBits 8 (RNN ops stay fp32)")
)
