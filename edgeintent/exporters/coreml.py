"""CoreML target: ``torch.jit.trace`` → ML program (``.mlpackage``) with coremltools.

- Batch and each stream's length are ``ct.RangeDim`` (one shared dim per stream for its ids and
  ages); integer inputs are int32 (CoreML has no int64 inputs).
- Compute precision is always explicit: fp32 for parity, fp16 on request (coremltools silently
  defaults to fp16 for ML programs).
- Minimum deployment target: iOS 16 / macOS 13 (``MIN_TARGET``).
- torch 2.13 traces ``nn.GRUCell`` into ``aten::unsafe_chunk``, which coremltools 9 cannot convert;
  ``unsafe_chunk`` is registered here as ``chunk`` (same values: the "unsafe" only drops a view check).
  The models themselves use ``nn.GRU`` / ``nn.LSTM`` (converted to a while-loop / the MIL ``lstm``
  op) and write decoder cells with plain Linear layers.

On Linux the artifact runs in the MIL reference executor (runtime ``mil-reference``: graph semantics,
not Apple kernels); on macOS ``MLModel.predict`` is available as well (runtime ``coreml``).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from edgeintent.errors import ExportError
from edgeintent.exporters import Target, register_target
from edgeintent.runtimes.mil_reference import quiet_coremltools

MIN_TARGET = "iOS16"
MAX_BATCH = 4096
MAX_STEPS = 4096


def _quiet_import():
    ct = quiet_coremltools()
    _register_unsafe_chunk()
    return ct


_REGISTERED = False


def _register_unsafe_chunk() -> None:
    """torch 2.13 traces ``nn.GRUCell`` into ``aten::unsafe_chunk(x, chunks, dim)``, which coremltools 9
    does not know; it is a plain split into equal parts (the "unsafe" only drops a view check)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY, register_torch_op

    def unsafe_chunk(context, node):
        x, chunks, dim = _get_inputs(context, node, expected=3)
        chunks, dim = int(chunks.val), int(dim.val)
        total = x.shape[dim]
        size = -(-total // chunks)
        sizes = [size] * (total // size) + ([total % size] if total % size else [])
        # a list output, as coremltools' own ``split`` does (a ListUnpack node takes it apart)
        context.add(mb.split(x=x, split_sizes=sizes, axis=dim, name=node.name), torch_name=node.name)

    if "unsafe_chunk" not in _TORCH_OPS_REGISTRY.name_to_func_mapping:
        register_torch_op(unsafe_chunk)
    _REGISTERED = True


def convert(model, spec, samples, precision: str = "fp32"):
    """The converted ``MLModel`` (not saved)."""
    import torch

    from edgeintent.toolkit.models.exportable import ExportModule, example_inputs

    ct = _quiet_import()
    sig = model.signature()
    specs = sig.inputs
    example = example_inputs(model, samples)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(ExportModule(model), example, check_trace=False)
    batch = ct.RangeDim(1, MAX_BATCH, int(example[0].shape[0]))
    dims: dict[str, object] = {"batch": batch}
    inputs = []
    for s, ex in zip(specs, example, strict=True):
        shape = []
        for i, d in enumerate(s.dims):
            if isinstance(d, str):
                if d not in dims:
                    dims[d] = ct.RangeDim(1, MAX_STEPS, int(ex.shape[i]))
                shape.append(dims[d])
            else:
                shape.append(int(d))
        dtype = np.int32 if s.dtype == "int64" else np.float32
        inputs.append(ct.TensorType(name=s.name, shape=ct.Shape(tuple(shape)), dtype=dtype))
    precision_ct = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            return ct.convert(
                traced, inputs=inputs, outputs=[ct.TensorType(name=o) for o in sig.outputs],
                convert_to="mlprogram", compute_precision=precision_ct,
                minimum_deployment_target=getattr(ct.target, MIN_TARGET),
            )  # fmt: skip
    except Exception as exc:
        raise ExportError(f"coremltools could not convert {model.registry_name}: {type(exc).__name__}: {exc}") from None


@register_target("coreml")
class CoremlTarget(Target):
    extension = ".mlpackage"
    precisions = ("fp32", "fp16")
    runtime = "MIL reference on Linux; CoreML on macOS"
    runtimes = ("mil-reference",)
    notes = f"mlprogram, min target {MIN_TARGET}, RangeDim batch and lengths, explicit compute precision"
    requires = ("coremltools",)

    def export(self, model, spec, samples, out: Path, precision: str) -> dict:
        mlmodel = convert(model, spec, samples, precision)
        sink = io.StringIO()
        with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
            mlmodel.save(str(out))
        return {"minimum_deployment_target": MIN_TARGET, "compute_precision": precision}
