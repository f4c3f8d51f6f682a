"""Quantization recipes: artifacts in their runtimes, the accuracy report, auto selection, parity rows."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edgeintent.cli import main
from edgeintent.exporters import export_bundle, exported_artifacts, get_target
from edgeintent.runtimes.mil_reference import MilProgram
from edgeintent.parity import run_parity
from edgeintent.parity.policy import QUANTIZED, tolerance
from edgeintent.quantization import RECIPES, recipes
from edgeintent.quantization.select import _explain, _pick, candidate_artifact
from edgeintent.runtimes import open_artifact
from edgeintent.toolkit.bundle import load_bundle, load_model, verify_bundle
from edgeintent.toolkit.golden import golden_samples
from edgeintent.toolkit.models.exportable import feeds, torch_model, torch_outputs
from edgeintent.toolkit.features.spec import FitConfig
from edgeintent.toolkit.training.trainer import TrainConfig
from tests.conftest import SRC

FAST = TrainConfig(epochs=3, batch_size=128, patience=3, golden_rows=160)


@pytest.fixture(scope="module")
def lstm_dipn(trained):
    """dipn with LSTM cells (what int8 can cover) trained on the simulator (never change it: copy first)."""
    return trained("dipn", FAST, options={"rnn": "lstm"})


@pytest.fixture(scope="module")
def exported_lstm(lstm_dipn, tmp_path_factory):
    """lstm_dipn with its fp32 CoreML program exported (the CoreML recipes compress that program)."""
    path = tmp_path_factory.mktemp("quant-coreml") / "b"
    shutil.copytree(lstm_dipn, path)
    export_bundle(path, "coreml")
    return path


#: short windows for the LiteRT recipes: litert-torch unrolls the recurrences to ``max_len``, so its conversion
#: time grows with the window (~45 CPU-s at the default windows, ~25 at these); a recipe quantizes whatever
#: fp32 program it is given, so the window length is not what its assertions check (tests/test_litert.py
#: uses the same windows)
SHORT = FitConfig(max_len=(("gesture", 8), ("click", 4), ("cloud", 4)))
#: the LiteRT recipe that converts the bundle itself (no fp32 export in it); the others quantize the
#: bundle's exported fp32 .tflite, as ``edgeintent quantize`` does after ``export --target litert``
LITERT_CONVERTS = "litert/dynamic-int8"


@pytest.fixture(scope="module")
def litert_lstm(tmp_path_factory):
    """``(bare, exported)``: an LSTM dipn with short windows, and a copy with its fp32 .tflite exported once
    (never change them: copy first). None when LiteRT cannot export here."""
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.training.trainer import prepare, train_bundle

    if get_target("litert").missing() or get_target("litert").run_missing():
        return None
    root = tmp_path_factory.mktemp("quant-litert")
    prep = prepare(load_source(SRC), FAST.seed, FAST.valid_share, fit=SHORT)
    train_bundle("dipn", SRC, root / "bare", FAST, options={"rnn": "lstm"}, fit=SHORT, prepared=prep)
    shutil.copytree(root / "bare", root / "exported")
    export_bundle(root / "exported", "litert")
    return root / "bare", root / "exported"


def copy(src, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(src, dst)
    return dst


#: the MIL op a compressed CoreML program decompresses its weights with
COREML_WEIGHT_OP = {"weight-int8": "constexpr_affine_dequantize", "palettize-6": "constexpr_lut_to_dense",
                    "palettize-4": "constexpr_lut_to_dense"}  # fmt: skip


@pytest.mark.parametrize("name", RECIPES.names())
def test_every_recipe_builds_an_artifact_its_runtime_runs_close_to_torch(exported_lstm, request, tmp_path, name):
    recipe = RECIPES.get(name)
    short = request.getfixturevalue("litert_lstm") if recipe.target == "litert" else None
    bundle = load_bundle(exported_lstm if short is None else short[name != LITERT_CONVERTS])
    if short is not None:  # the fp32 program it starts from: its own conversion, or the bundle's export
        assert bool(exported_artifacts(bundle, ["litert"])) == (name != LITERT_CONVERTS)
    model = torch_model(load_model(bundle))
    inputs = feeds(model, golden_samples(bundle.golden), np.arange(64))
    out = tmp_path / get_target(recipe.target).artifact_name(recipe.mode)
    extra = recipe.build(model, bundle, [inputs], out)
    assert out.exists() and isinstance(extra, dict)
    if recipe.target == "coreml" and recipe.mode in COREML_WEIGHT_OP:
        assert COREML_WEIGHT_OP[recipe.mode] in MilProgram(out).op_types
    with open_artifact(candidate_artifact(recipe.target, recipe.mode, out, model, bundle, extra)) as session:
        got = session.run(inputs)
    ref = torch_outputs(model, inputs)
    assert set(got) == set(ref)
    for name_, want in ref.items():
        assert np.isfinite(got[name_]).all(), name_
        assert np.abs(got[name_] - want).max() < 0.5, (name_, float(np.abs(got[name_] - want).max()))


def test_every_target_has_its_recipes():
    have = {(r.target, r.mode) for r in recipes()}
    assert have == {("onnx", "dynamic-int8"), ("onnx", "dynamic-uint8"), ("onnx", "static-int8"), ("onnx", "fp16"),
                    ("coreml", "fp16"), ("coreml", "weight-int8"), ("coreml", "palettize-6"), ("coreml", "palettize-4"),
                    ("mnn", "fp16"), ("mnn", "weight-int8"), ("litert", "dynamic-int8"), ("litert", "weight-int8"),
                    ("litert", "fp16")}  # fmt: skip


@pytest.mark.parametrize("mode", ["dynamic-int8", "static-int8"])
def test_onnx_int8_report_and_parity(lstm_dipn, tmp_path, mode):
    path = copy(lstm_dipn, tmp_path)
    res = CliRunner().invoke(main, ["quantize", str(path), "--target", "onnx", "--mode", mode, "--runs", "20", "--json"])
    assert res.exit_code == 0, res.output[-2000:]
    report = json.loads(res.stdout)
    (cand,) = report["candidates"]
    assert report["installed"] == [mode] and cand["mode"] == mode
    assert 0 < cand["bytes"] < report["fp32_bytes"]
    assert cand["latency"]["p50_ms"] > 0
    for t in ("buy_rt", "buy_long"):
        task = cand["tasks"][t]
        assert task["auc"] is not None and abs(task["auc_delta"]) < 0.05
        assert 0 < task["logit_max_abs"] < 1.0 and 0 <= task["flip_share"] < 0.2
    verify_bundle(path)
    bundle = load_bundle(path)
    assert "exports/onnx/quantize-report.json" in bundle.files
    meta = next(m for m in exported_artifacts(bundle, ["onnx"]) if m.precision == mode)
    if mode == "dynamic-int8":  # LSTM → DynamicQuantizeLSTM: the recurrent weights are int8 too
        import onnx

        ops = {n.op_type for n in onnx.load(str(path / meta.artifact)).graph.node}
        assert "DynamicQuantizeLSTM" in ops and "MatMulInteger" in ops
    if mode == "static-int8":  # mask-safe op selection: no quantized Softmax / Add around the −1e4 mask
        import onnx

        graph = onnx.load(str(path / meta.artifact)).graph
        quantized_inputs = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
        softmax_in = [i for n in graph.node if n.op_type == "Softmax" for i in n.input]
        assert not set(softmax_in) & quantized_inputs
    # the parity row for the artifact comes from its report
    tol = tolerance("onnx", mode, meta.quantize_report)
    assert tol != QUANTIZED and tol.logit_abs < QUANTIZED.logit_abs
    report = run_parity(path, ["onnx"])
    rows = [r for r in report["results"] if r["precision"] == mode]
    assert rows and all(r["passed"] for r in rows), [r["reasons"] for r in rows]


def test_coreml_compressed_weights_run_in_the_mil_reference(exported_lstm, tmp_path):
    """The quantize CLI on a compressed CoreML mode (every mode's op: the recipe test above)."""
    path = copy(exported_lstm, tmp_path)
    mode = "palettize-4"
    res = CliRunner().invoke(main, ["quantize", str(path), "--target", "coreml", "--mode", mode, "--json"])
    assert res.exit_code == 0, res.output[-2000:]
    cand = json.loads(res.stdout)["candidates"][0]
    assert cand["latency"]["p50_ms"] is None and "not timed" in cand["latency"]["why"]
    assert cand["tasks"]["buy_rt"]["logit_max_abs"] < 0.5
    assert COREML_WEIGHT_OP[mode] in MilProgram(path / f"exports/coreml/model.{mode}.mlpackage").op_types
    assert cand["weight_bytes"] < cand["bytes"]
    report = run_parity(path, ["coreml"])
    assert report["passed"], [r["reasons"] for r in report["results"] if not r["passed"]]


def test_mnn_weight_int8(lstm_dipn, tmp_path):
    path = copy(lstm_dipn, tmp_path)
    res = CliRunner().invoke(main, ["quantize", str(path), "--target", "mnn", "--mode", "weight-int8", "--runs", "20", "--json"])
    assert res.exit_code == 0, res.output[-2000:]
    cand = json.loads(res.stdout)["candidates"][0]
    assert cand["bytes"] < json.loads(res.stdout)["fp32_bytes"]
    assert run_parity(path, ["mnn"])["passed"]


def _row(mode, size, drop, budget=0.002):
    return {"mode": mode, "bytes": size, "size_ratio": size / 1000, "max_auc_drop": drop, "within_budget": drop <= budget}


def test_auto_keeps_the_smallest_within_budget_and_says_why():
    rows = [_row("a", 900, 0.0), _row("b", 500, 0.001), _row("c", 300, 0.01)]
    (chosen,) = _pick(rows)
    assert chosen["mode"] == "b"
    text = _explain(rows, [chosen], 0.002)
    assert text.startswith("b: the smallest within the budget") and "over budget: c" in text and "a" in text
    assert _pick([_row("c", 300, 0.01)]) == []
    assert "nothing was installed" in _explain([_row("c", 300, 0.01)], [], 0.002)


def test_quantize_bad_input_is_one_line_exit_2(lstm_dipn, tmp_path):
    for args, msg in [
        (["--target", "onnx", "--mode", "int3"], "no quantization mode 'int3'"),
        (["--target", "tflite", "--mode", "fp16"], "unknown target 'tflite'"),
        (["--target", "onnx", "--budget-auc", "-1"], "--budget-auc must be"),
        (["--target", "onnx", "--mode", "static-int8-all-ops"], "attention mask"),
    ]:
        res = CliRunner().invoke(main, ["quantize", str(lstm_dipn), *args])
        assert res.exit_code == 2, res.output
        assert msg in res.output and len(res.output.strip().splitlines()) == 1


def _bundle_state(path):
    """The bundle's manifest entries, with quantize-report.json's latency figures (timings) left out."""
    manifest = verify_bundle(path)["files"]
    state = {rel: entry["sha256"] for rel, entry in manifest.items() if not rel.endswith("quantize-report.json")}
    reports = {}
    for rel in manifest:
        if rel.endswith("quantize-report.json"):
            report = json.loads((path / rel).read_text())
            for c in report["candidates"]:
                c.pop("latency")
            report.pop("bundle")
            reports[rel] = report
    return state, reports


def test_quantize_again_leaves_no_candidate_of_the_earlier_run(lstm_dipn, tmp_path):
    """Two quantize runs with different modes leave the bundle exactly as the second run alone would."""
    twice, once = tmp_path / "twice", tmp_path / "once"
    shutil.copytree(lstm_dipn, twice)
    shutil.copytree(lstm_dipn, once)
    base = ["--target", "onnx", "--runs", "10", "--json"]
    for path, modes in ((twice, ["dynamic-int8", "fp16"]), (once, ["fp16"])):
        for mode in modes:
            res = CliRunner().invoke(main, ["quantize", str(path), *base, "--mode", mode])
            assert res.exit_code == 0, res.output[-2000:]
    assert not (twice / "exports/onnx/model.dynamic-int8.onnx").exists()
    assert _bundle_state(twice) == _bundle_state(once)
    assert [m.precision for m in exported_artifacts(load_bundle(twice), ["onnx"])] == ["fp16"]
