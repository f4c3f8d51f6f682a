"""Name the first node where an ONNX artifact departs from the torch model.

Both the artifact and a fresh export of the bundle's torch model (same exporter, same precision:
its final outputs match torch, which the ``torch`` and ``onnx`` parity rows establish) get every
node output exposed as a graph output. Both run on the same feeds; walking the artifact's nodes in
graph order, the first node whose output differs from the tensor of the same name in the fresh
export (beyond ``RTOL`` of its magnitude) is the first divergent node. When the artifact's graph
was built differently (no common tensor names), the report says so instead of guessing. Artifacts
carry short names (``exporters.onnx.compact``); the report names the node by the exporter's scoped
name (``/model/…/GRU``), which the fresh export keeps for each short name.
"""

from __future__ import annotations

import numpy as np

RTOL = {"fp32": 1e-4, "fp16": 1e-2}


def _expose_all(proto):
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    known = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for out in node.output:
            if out and out not in known:
                model.graph.output.append(onnx.ValueInfoProto(name=out))
                known.add(out)
    return model


def _run_all(proto, feeds: dict, precision: str) -> dict[str, np.ndarray]:
    from edgeintent.exporters.onnx import serialize
    from edgeintent.runtimes.sessions import OrtSession

    runner = OrtSession(serialize(_expose_all(proto)), precision, 1)
    runner.outputs = [o for o in runner.outputs if o]
    return runner.run(feeds)


def first_divergent_node(bundle, model, meta, feeds: dict) -> dict:
    import onnx

    from edgeintent.exporters.onnx import export_proto
    from edgeintent.toolkit.golden import golden_samples

    artifact = onnx.load(str(bundle.file(meta.artifact)))
    scoped: dict[str, str] = {}  # the artifact's short node names -> the exporter's scoped names (/model/…/GRU)
    reference = export_proto(model, bundle.spec, golden_samples(bundle.golden), meta.precision, scoped)
    try:
        got = _run_all(artifact, feeds, meta.precision)
        ref = _run_all(reference, feeds, meta.precision)
    except Exception as exc:  # a broken artifact may not even run with its intermediates exposed
        return {"node": None, "why": f"could not run the graphs with intermediates exposed: {exc}"}
    rtol = RTOL.get(meta.precision, 1e-2)
    common = 0
    for node in artifact.graph.node:
        for out in node.output:
            if out not in got or out not in ref:
                continue
            a, b = np.asarray(got[out]), np.asarray(ref[out])
            common += 1
            if a.shape != b.shape:
                return {"node": scoped.get(node.name, node.name), "op": node.op_type, "output": out,
                        "why": f"shape {a.shape} vs {b.shape}"}
            if a.dtype == bool or np.issubdtype(a.dtype, np.integer):
                bad = not np.array_equal(a, b)
                diff = float(np.sum(a != b))
            else:
                a64, b64 = a.astype(np.float64), b.astype(np.float64)
                both_nan = np.isnan(a64) & np.isnan(b64)
                d = np.where(both_nan, 0.0, np.abs(a64 - b64))
                diff = float(np.nanmax(d, initial=0.0)) if np.isfinite(d).all() else float("inf")
                scale = float(np.nanmax(np.abs(b64), initial=0.0)) if b64.size else 0.0
                bad = not diff <= rtol * (1.0 + scale)
            if bad:
                return {"node": scoped.get(node.name, node.name), "op": node.op_type, "output": out, "max_abs_diff": diff}
    if common == 0:
        return {"node": None, "why": "the artifact shares no tensor names with a fresh export; it was built differently"}
    return {"node": None, "why": "every intermediate matches a fresh export on this batch; the divergence is elsewhere"}
