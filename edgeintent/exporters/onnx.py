"""ONNX target: the TorchScript-based exporter (``dynamo=False``), opset 17, run by onnxruntime.

Why not the dynamo exporter (torch 2.13), each trap covered by a test in ``tests/test_export.py``:

- it writes the example's sequence lengths into ``graph.value_info``, so onnxruntime fails when the
  streams have other lengths. We clear ``value_info`` after export anyway (onnxruntime re-infers it),
  and :func:`check_symbolic` refuses an artifact whose batch or sequence dims are fixed;
- a second dynamo export of an RNN model in the same process silently fixes T (the aten gru/lstm
  dispatch caches); the TorchScript exporter does not, and the test exports twice in one process;
- a reported dynamo GRU bug (``linear_before_reset``) gave 0.1 errors; the GRU canary test compares
  a GRU model against torch on streams of different lengths.

The TorchScript exporter is deprecated upstream; when it goes, these tests say what to re-check.
Sequences are right padded with masks, never packed (both exporters fail on packed sequences).
Output bytes are deterministic for the same bundle; nothing is stored as external data.

:func:`compact` drops what the runtime never reads: the exporter's node and tensor names (scope paths such
as ``/model/intra/click/Constant_3_output_0``; a third of a small model's file) become short base-36 names,
duplicated ``Constant`` nodes and initializers are merged, unused initializers and doc strings are dropped.
The graph's input and output names stay (the runtime layer and parity feed and read them by name). The
renaming is deterministic, so a fresh export of the same bundle has the same tensor names as its artifact
(``parity/onnx_debug.py`` compares the two by name).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from edgeintent.errors import ExportError
from edgeintent.exporters import Target, register_target

OPSET = 17


def _dynamic_axes(specs, outputs: list[str]) -> dict[str, dict[int, str]]:
    axes = {s.name: {i: d for i, d in enumerate(s.dims) if isinstance(d, str)} for s in specs}
    axes.update({o: {0: "batch"} for o in outputs})
    return axes


def check_symbolic(proto, specs) -> None:
    """Refuse a graph whose batch or sequence dims were fixed at export (they must stay dim_params)."""
    wanted = {s.name: s.dims for s in specs}
    for vi in list(proto.graph.input) + list(proto.graph.output):
        dims = vi.type.tensor_type.shape.dim
        expect = wanted.get(vi.name, ("batch",))
        for i, d in enumerate(expect):
            if isinstance(d, str) and (i >= len(dims) or not dims[i].dim_param):
                got = dims[i].dim_value if i < len(dims) else "missing"
                raise ExportError(f"onnx export fixed dim {i} ({d}) of {vi.name!r} to {got}; it must stay dynamic")


def toposort(graph) -> None:
    """Order ``graph.node`` topologically, stable otherwise (onnxruntime's fp16 converter appends the
    input casts at the end, which the ONNX checker rejects)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ExportError(f"onnx graph has a cycle or a missing input at node {rest[0].name!r}")
        pending = rest
    nodes = [type(n)() for n in ordered]
    for dst, src in zip(nodes, ordered, strict=True):
        dst.CopyFrom(src)
    del graph.node[:]
    graph.node.extend(nodes)


def _short(i: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        i, r = divmod(i, 36)
        out = digits[r] + out
        if not i:
            return out


def compact(proto, original: dict[str, str] | None = None):
    """Shorten node and tensor names, merge duplicated constants and initializers, drop unused
    initializers and doc strings, in place; the graph's input and output names are kept. A graph with
    subgraphs (If/Loop bodies) only loses its doc strings: their names are scoped across graphs.
    ``original``, if given, receives each node's new name → its exporter name (``/model/…/GRU``)."""
    import onnx

    graph = proto.graph
    proto.doc_string = graph.doc_string = ""
    for node in graph.node:
        node.doc_string = ""
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        return proto
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    alias: dict[str, str] = {}  # a duplicate's name -> the name of the first equal tensor
    first: dict[bytes, str] = {}
    inits = []
    for t in graph.initializer:
        key = b"i" + t.SerializeToString().replace(t.name.encode(), b"", 1)
        if key in first and t.name not in keep:
            alias[t.name] = first[key]
        else:
            first.setdefault(key, t.name)
            inits.append(t)
    nodes = []
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
        if node.op_type == "Constant" and len(node.output) == 1 and node.output[0] not in keep:
            key = b"c" + b"".join(a.SerializeToString() for a in node.attribute)
            if key in first:
                alias[node.output[0]] = first[key]
                continue
            first[key] = node.output[0]
        nodes.append(node)
    for out in graph.output:
        out.name = alias.get(out.name, out.name)
    used = {i for n in nodes for i in n.input} | keep
    inits = [t for t in inits if t.name in used]
    names: dict[str, str] = {n: n for n in keep}
    names[""] = ""  # an omitted optional input

    def short(name: str) -> str:
        if name not in names:
            names[name] = _short(len(names))
        return names[name]

    for t in inits:
        t.name = short(t.name)
    for i, node in enumerate(nodes):
        if original is not None:
            original[_short(i)] = node.name
        node.name = _short(i)
        node.input[:] = [short(x) for x in node.input]
        node.output[:] = [short(x) for x in node.output]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    kept = [type(n)() for n in nodes]
    for dst, src in zip(kept, nodes, strict=True):
        dst.CopyFrom(src)
    del graph.node[:]
    graph.node.extend(kept)
    return proto


def to_fp16(proto):
    """fp16 weights and arithmetic with fp32 inputs and outputs (onnxruntime's converter)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = convert_float_to_float16(proto, keep_io_types=True, disable_shape_infer=False)
    toposort(proto.graph)
    return proto


def export_proto(model, spec, samples, precision: str = "fp32", original_names: dict[str, str] | None = None):
    """The ModelProto of ``model`` (fp32 or fp16), checked to keep every dynamic dim dynamic and
    :func:`compact`-ed (``original_names`` receives its node names → the exporter's)."""
    import onnx
    import torch

    from edgeintent.toolkit.models.exportable import ExportModule, example_inputs

    sig = model.signature()
    specs, outputs = list(sig.inputs), list(sig.outputs)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            ExportModule(model), example_inputs(model, samples), buf, input_names=[s.name for s in specs],
            output_names=outputs, dynamic_axes=_dynamic_axes(specs, outputs), opset_version=OPSET,
            dynamo=False, do_constant_folding=True,
        )  # fmt: skip
    proto = onnx.load_from_string(buf.getvalue())
    del proto.graph.value_info[:]  # see the module docstring: onnxruntime infers it from the inputs
    proto.producer_name, proto.producer_version = "edgeintent", ""
    proto.doc_string = ""
    check_symbolic(proto, specs)
    if precision == "fp16":
        proto = to_fp16(proto)
        del proto.graph.value_info[:]
        check_symbolic(proto, specs)
    compact(proto, original_names)
    onnx.checker.check_model(proto)
    return proto


def serialize(proto) -> bytes:
    return proto.SerializeToString(deterministic=True)


@register_target("onnx")
class OnnxTarget(Target):
    extension = ".onnx"
    precisions = ("fp32", "fp16")
    runtime = "onnxruntime"
    runtimes = ("onnxruntime",)
    notes = "TorchScript exporter, opset 17; fp16 keeps fp32 inputs/outputs"
    requires = ("onnx", "onnxruntime")

    def export(self, model, spec, samples, out: Path, precision: str) -> dict:
        out.write_bytes(serialize(export_proto(model, spec, samples, precision)))
        return {"opset": OPSET, "exporter": "torch.onnx (TorchScript)"}
