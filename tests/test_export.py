"""Export targets: signatures, the ONNX traps, CoreML conversion, MNN without telemetry, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgeintent.cli import main
from edgeintent.exporters import export_bundle, get_target, list_targets, load_runner
from edgeintent.errors import ExportError
from edgeintent.toolkit.models.exportable import feeds, torch_outputs
from edgeintent.quantization.capabilities import capability_table
from edgeintent.toolkit.bundle import load_bundle, verify_bundle
from edgeintent.toolkit.models import get_entry, list_models
from edgeintent.toolkit.models.base import TimeCrossAttention
from edgeintent.toolkit.golden import golden_samples
from edgeintent.toolkit.bundle import load_model
from tests.helpers import quick_targets

TORCH_MODELS = [m for m in list_models() if get_entry(m).kind == "torch"]


def fresh(trained, name, tmp_path):
    dst = tmp_path / name
    shutil.copytree(trained(name), dst)
    return dst


def _different_lengths(model, bundle):
    """Golden rows cut so every stream has its own width (the case dynamo-exported graphs failed on)."""
    samples = golden_samples(bundle.golden)
    f = feeds(model, samples)
    widths = {s: f[s].shape[1] for s in model.streams}
    assert len(model.streams) == 1 or len(set(widths.values())) > 1, widths
    return f


@pytest.mark.parametrize("target", quick_targets())
@pytest.mark.parametrize("name", TORCH_MODELS)
def test_every_torch_model_exports_and_matches_torch(trained, tmp_path, name, target):
    if target == "coreml" and name == "dipn-tiny":
        pytest.skip("dipn covers the same graph at another size; CoreML conversion is the slow one")
    path = fresh(trained, name, tmp_path)
    meta = export_bundle(path, target)
    verify_bundle(path)  # the artifact and its metadata are in the manifest
    bundle = load_bundle(path)
    assert any(f == meta.artifact or f.startswith(meta.artifact + "/") for f in bundle.files)
    assert f"{meta.artifact}.meta.json" in bundle.files
    model = load_model(bundle)
    f = _different_lengths(model, bundle)
    runner = load_runner(bundle, meta)
    assert runner.inputs == model.input_names()
    got, ref = runner.run(f), torch_outputs(model, f)
    assert sorted(got) == sorted(ref) == sorted(meta.outputs)
    for k in ref:  # scores (B,) and vector outputs such as find's embedding (B, D)
        diff = np.abs(got[k].reshape(ref[k].shape) - ref[k]).max()
        assert diff <= 1e-5, (k, diff)
    # logits are real logits, not probabilities (MNN once returned probabilities under the logit name)
    for t in model.tasks:
        np.testing.assert_allclose(1 / (1 + np.exp(-got[f"logit_{t}"].reshape(-1))), got[f"prob_{t}"].reshape(-1), atol=1e-5)
    # every runtime names a missing input in one line (not a KeyError or a runtime's own traceback)
    with pytest.raises(ExportError, match=f"needs input '{model.input_names()[0]}'"):
        runner.run({k: v for k, v in f.items() if k != model.input_names()[0]})


def test_capability_table_and_targets_cli():
    rows = capability_table()
    assert [r["target"] for r in rows] == list_targets()
    for r in rows:
        assert {"extension", "precisions", "dynamic_batch", "dynamic_length", "quantization", "runs_here"} <= set(r)
    res = CliRunner().invoke(main, ["targets", "--json"])
    assert res.exit_code == 0, res.output
    assert [r["target"] for r in json.loads(res.output)] == list_targets()


# -- ONNX -------------------------------------------------------------------------------------


def test_onnx_dims_are_symbolic_bytes_deterministic_and_self_contained(trained, tmp_path):
    import onnx

    from edgeintent.exporters.onnx import export_proto, serialize

    bundle = load_bundle(trained("dipn"))
    model = load_model(bundle)
    samples = golden_samples(bundle.golden)
    a = serialize(export_proto(model, bundle.spec, samples))
    b = serialize(export_proto(model, bundle.spec, samples))  # second export in the same process
    assert a == b
    proto = onnx.load_from_string(a)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert len(proto.graph.value_info) == 0
    for spec in model.signature().inputs:
        vi = next(i for i in proto.graph.input if i.name == spec.name)
        for d, want in zip(vi.type.tensor_type.shape.dim, spec.dims, strict=True):
            assert (d.dim_param == want) if isinstance(want, str) else (d.dim_value == want)


@pytest.mark.parametrize("name", ["find", "dipn"])
def test_onnx_compact_drops_exporter_names_and_duplicates_without_changing_outputs(trained, name, monkeypatch):
    import onnx
    import onnxruntime as ort

    import edgeintent.exporters.onnx as onnx_exp

    bundle = load_bundle(trained(name))
    model = load_model(bundle)
    samples = golden_samples(bundle.golden)
    proto = onnx_exp.export_proto(model, bundle.spec, samples)
    io_names = {v.name for v in proto.graph.input} | {v.name for v in proto.graph.output}
    assert io_names == set(model.signature().input_names) | set(model.signature().outputs)
    tensors = {t.name for t in proto.graph.initializer} | {x for n in proto.graph.node for x in [*n.input, *n.output]}
    assert max(len(x) for x in tensors - io_names) <= 3 and max(len(n.name) for n in proto.graph.node) <= 3
    consts = [b"".join(a.SerializeToString() for a in n.attribute) for n in proto.graph.node if n.op_type == "Constant"]
    assert len(consts) == len(set(consts))
    inits = [t.SerializeToString().replace(t.name.encode(), b"", 1) for t in proto.graph.initializer]
    assert len(inits) == len(set(inits))
    used = {x for n in proto.graph.node for x in n.input}
    assert all(t.name in used for t in proto.graph.initializer)
    monkeypatch.setattr(onnx_exp, "compact", lambda p, original=None: p)
    plain = onnx_exp.export_proto(model, bundle.spec, samples)
    assert any(len(n.name) > 10 for n in plain.graph.node)
    assert len(onnx_exp.serialize(proto)) < 0.85 * len(onnx_exp.serialize(plain))
    f = feeds(model, samples)
    runs = [ort.InferenceSession(onnx_exp.serialize(p), providers=["CPUExecutionProvider"]) for p in (proto, plain)]
    a, b = (r.run(None, {k: np.asarray(f[k]) for k in (i.name for i in r.get_inputs())}) for r in runs)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert onnx.checker.check_model(proto) is None


@pytest.mark.parametrize("name", ["dipn", "iidn"])
def test_time_aware_graphs_take_no_runtime_exp(trained, name):
    """Event ages become seconds through exact_exp's multiply / add / floor / clip, never an Exp node:
    MNN's aarch64 exp is off by up to 5.6e-5 relative, 0.3 s at a 2-hour age (benchmarks/arm_kernels.py)."""
    import onnx

    from edgeintent.exporters.onnx import export_proto, serialize

    bundle = load_bundle(trained(name))
    model = load_model(bundle)
    assert any(isinstance(m, TimeCrossAttention) for m in model.modules())
    proto = onnx.load_from_string(serialize(export_proto(model, bundle.spec, golden_samples(bundle.golden))))
    ops = {n.op_type for n in proto.graph.node}
    assert "Exp" not in ops and "Floor" in ops, sorted(ops)


def test_check_symbolic_refuses_a_fixed_sequence_dim(trained):
    import onnx

    from edgeintent.exporters.onnx import check_symbolic, export_proto

    bundle = load_bundle(trained("dipn"))
    model = load_model(bundle)
    proto = export_proto(model, bundle.spec, golden_samples(bundle.golden))
    broken = onnx.ModelProto()
    broken.CopyFrom(proto)
    dim = next(i for i in broken.graph.input if i.name == "click").type.tensor_type.shape.dim[1]
    dim.dim_value = 7  # what the dynamo exporter did to value_info / inputs
    with pytest.raises(ExportError, match="fixed dim 1 \\(T_click\\) of 'click'"):
        check_symbolic(broken, model.signature().inputs)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_rnn_canary_matches_torch_at_every_length(cell, tmp_path):
    """A bare GRU / LSTM through the exporter and onnxruntime, exported twice in one process."""
    import onnx

    from edgeintent.runtimes.sessions import OrtSession

    torch.manual_seed(0)
    rnn = (torch.nn.GRU if cell == "gru" else torch.nn.LSTM)(6, 8, batch_first=True).eval()

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn

        def forward(self, x):
            return self.rnn(x)[0]

    for attempt in range(2):
        path = str(tmp_path / f"canary-{cell}-{attempt}.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Wrap(), (torch.randn(2, 5, 6),), path, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "b", 1: "t"}, "y": {0: "b", 1: "t"}}, dynamo=False, opset_version=17)  # fmt: skip
        proto = onnx.load(path)
        assert proto.graph.input[0].type.tensor_type.shape.dim[1].dim_param == "t"
        runner = OrtSession(proto.SerializeToString(), "fp32", 1)
        for t in (1, 3, 17, 50):
            x = torch.randn(3, t, 6)
            with torch.no_grad():
                ref = Wrap()(x).numpy()
            assert np.abs(runner.run({"x": x.numpy()})["y"] - ref).max() <= 1e-5


def test_fp16_onnx_session_is_created_at_a_safe_level(trained, tmp_path):
    """onnxruntime 1.32 segfaults creating fp16 sessions at ORT_ENABLE_ALL: run it in a child."""
    path = fresh(trained, "dipn", tmp_path)
    meta = export_bundle(path, "onnx", "fp16")
    code = (
        "import sys; from edgeintent.toolkit.bundle import load_bundle; from edgeintent.exporters import load_runner;"
        "import json; from edgeintent.exporters import ArtifactMeta; b = load_bundle(sys.argv[1]);"
        "m = ArtifactMeta.from_json(json.loads(sys.argv[2]));"
        "from edgeintent.toolkit.models.exportable import feeds; from edgeintent.toolkit.golden import golden_samples;"
        "from edgeintent.toolkit.bundle import load_model;"
        "r = load_runner(b, m); print(sorted(r.run(feeds(load_model(b), golden_samples(b.golden)))))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path), json.dumps(meta.to_json())], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "prob_buy_rt" in proc.stdout


# -- CoreML -----------------------------------------------------------------------------------


def test_coreml_converts_grucell_unsafe_chunk_and_the_mil_reference_runs_it(tmp_path):
    import numpy as np

    from edgeintent.exporters.coreml import _quiet_import
    from edgeintent.runtimes.mil_reference import MilProgram

    ct = _quiet_import()
    torch.manual_seed(0)

    class Cell(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = torch.nn.GRUCell(4, 6)

        def forward(self, x, h):
            return self.cell(x, h)

    m = Cell().eval()
    x, h = torch.randn(3, 4), torch.randn(3, 6)
    traced = torch.jit.trace(m, (x, h))
    assert "unsafe_chunk" in str(traced.inlined_graph)
    mlmodel = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(3, 4)), ct.TensorType(name="h", shape=(3, 6))],
                         convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
                         minimum_deployment_target=ct.target.iOS16)  # fmt: skip
    mlmodel.save(str(tmp_path / "cell.mlpackage"))
    prog = MilProgram(tmp_path / "cell.mlpackage")
    out = prog.run({"x": x.numpy(), "h": h.numpy()})
    with torch.no_grad():
        ref = m(x, h).numpy()
    assert np.abs(next(iter(out.values())) - ref).max() <= 1e-5


def test_mil_reference_names_an_op_it_cannot_run(trained, tmp_path, monkeypatch):
    from edgeintent.runtimes import mil_reference

    path = fresh(trained, "rnn", tmp_path)
    meta = export_bundle(path, "coreml")
    monkeypatch.delitem(mil_reference.KERNELS._entries, "linear")
    with pytest.raises(mil_reference.MilReferenceError, match="no kernel for op 'linear'"):
        load_runner(load_bundle(path), meta)


def test_coreml_fp16_is_explicit(trained, tmp_path):
    from edgeintent.runtimes.mil_reference import MilProgram

    path = fresh(trained, "rnn", tmp_path)
    m32, m16 = export_bundle(path, "coreml", "fp32"), export_bundle(path, "coreml", "fp16")
    assert (m32.extra["compute_precision"], m16.extra["compute_precision"]) == ("fp32", "fp16")
    assert "fp16" not in MilProgram(path / m32.artifact).dtypes
    assert "fp16" in MilProgram(path / m16.artifact).dtypes


@pytest.mark.coreml
def test_coreml_native_predict_matches_torch(trained, tmp_path):  # pragma: no cover - macOS only
    from edgeintent.runtimes import RUNTIMES
    from edgeintent.runtimes.coreml_native import CoremlSession

    why = RUNTIMES.get("coreml").available()
    if why:
        pytest.skip(why)
    path = fresh(trained, "dipn", tmp_path)
    meta = export_bundle(path, "coreml")
    bundle = load_bundle(path)
    model = load_model(bundle)
    f = feeds(model, golden_samples(bundle.golden))
    got = CoremlSession(path / meta.artifact).run(f)
    ref = torch_outputs(model, f)
    assert max(np.abs(got[k] - ref[k]).max() for k in ref) <= 1e-4


# -- MNN --------------------------------------------------------------------------------------


def _pip_freeze() -> str:
    return subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True).stdout


@pytest.mark.mnn
def test_export_works_offline_installs_nothing_and_never_imports_mnn_tools(trained, tmp_path):
    path = fresh(trained, "rnn", tmp_path)
    before = _pip_freeze()
    code = (
        "import sys; from edgeintent.exporters import export_bundle, list_targets;"
        f"[export_bundle(sys.argv[1], t) for t in {quick_targets(None)!r}];"
        "assert 'MNN.tools' not in sys.modules, 'MNN.tools was imported'; print('ok')"
    )
    cmd = [sys.executable, "-c", code, str(path)]
    offline = shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    if offline:
        cmd = ["unshare", "-n", *cmd]  # a new network namespace: no route to anywhere
    else:  # not root: make every socket connection fail inside the child instead
        (tmp_path / "sitecustomize.py").write_text(
            "import socket\n"
            "def _no(*a, **k):\n    raise OSError('network disabled by the test')\n"
            "socket.socket.connect = _no\nsocket.create_connection = _no\n"
        )
    env = None if offline else {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]
    for artifact in ("onnx/model.onnx", "coreml/model.mlpackage", "mnn/model.mnn"):
        assert (path / "exports" / artifact).exists(), artifact
    assert _pip_freeze() == before
    assert "aliyun" not in _pip_freeze().lower()


def test_edgeintent_source_never_imports_mnn_tools():
    import ast
    from pathlib import Path

    import edgeintent

    for py in Path(edgeintent.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("MNN.tools") for a in node.names), py
            elif isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("MNN.tools"), py
                assert not (node.module == "MNN" and any(a.name == "tools" for a in node.names)), py


# -- CLI --------------------------------------------------------------------------------------


def test_export_cli_writes_all_targets_and_refuses_bad_input(trained, tmp_path):
    path = fresh(trained, "iidn", tmp_path)
    runner = CliRunner()
    res = runner.invoke(main, ["export", str(path), "--target", "onnx,mnn", "--json"])
    assert res.exit_code == 0, res.output
    assert [m["target"] for m in json.loads(res.output)] == ["onnx", "mnn"]
    for args, msg in [
        (["export", str(path), "--target", "tflite"], "unknown target 'tflite'"),
        (["export", str(tmp_path / "nope"), "--target", "onnx"], "nope"),
        (["parity", str(path), "--device", "phone"], "--device phone: choose host or cpu-arm"),
        (["parity", str(path), "--target", "coreml"], "nothing exported for coreml"),
    ]:
        res = runner.invoke(main, args)
        assert res.exit_code == 2, (args, res.output)
        assert msg in res.output and "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) == 1, res.output


def test_gbdt_bundle_does_not_export(trained, tmp_path):
    path = fresh(trained, "gbdt", tmp_path)
    res = CliRunner().invoke(main, ["export", str(path), "--target", "onnx"])
    assert res.exit_code == 2
    assert "only torch models export" in res.output


def test_parity_without_exports_is_a_usage_error(trained, tmp_path):
    path = fresh(trained, "rnn", tmp_path)
    res = CliRunner().invoke(main, ["parity", str(path)])
    assert res.exit_code == 2 and "no exported artifacts" in res.output


def test_targets_exports_here():
    for name in list_targets():
        assert get_target(name).missing() is None, name
