"""The parity gate: passes on correct exports, fails on every injected conversion bug."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgeintent.cli import main
from edgeintent.exporters import export_bundle, install_artifact
from edgeintent.parity import compare, run_parity
from edgeintent.parity.policy import tolerance
from edgeintent.toolkit.bundle import load_bundle
from edgeintent.toolkit.bundle import load_model
from tests.helpers import quick_targets


@pytest.fixture(scope="module")
def exported(brief_bundles, tmp_path_factory):
    """dipn and iidn bundles with every target exported at fp32 (copy before changing them)."""
    root = tmp_path_factory.mktemp("parity")
    out = {}
    for name, raw in brief_bundles.items():
        out[name] = root / name
        shutil.copytree(raw, out[name])
        for t in quick_targets():
            export_bundle(out[name], t)
    return out


def copy_bundle(exported, name, tmp_path):
    dst = tmp_path / name
    shutil.copytree(exported[name], dst)
    return dst


@pytest.mark.parametrize("name", ["dipn", "iidn"])
def test_parity_passes_at_fp32_on_every_target_with_json_and_junit(exported, tmp_path, name):
    from junitparser import JUnitXml

    junit = tmp_path / "parity.xml"
    res = CliRunner().invoke(main, ["parity", str(exported[name]), "--json", "--junit", str(junit)])
    assert res.exit_code == 0, res.output[-3000:]
    report = json.loads(res.output)
    assert report["passed"]
    rows = {(r["target"], r["precision"], r["output"]): r for r in report["results"]}
    tasks = load_model(load_bundle(exported[name])).tasks
    for target in ("torch", *quick_targets()):
        for task in tasks:
            r = rows[(target, "fp32", task)]
            assert r["metrics"]["prob_max_abs"] <= 1e-5 and r["metrics"]["logit_max_abs"] <= 1e-5, r
            assert r["metrics"]["finite"] and r["metrics"]["spearman"] > 0.9999
    assert rows[("coreml", "fp32", tasks[0])]["runtime"].startswith("MIL reference (graph semantics, not Apple kernels)")
    # the golden set carries labels (too few positives here for an AUC: see the compare test)
    assert "label_" + tasks[1] in load_bundle(exported[name]).golden
    xml = JUnitXml.fromfile(str(junit))
    cases = [c for suite in xml for c in suite]
    assert len(cases) == len(report["results"]) == (1 + len(quick_targets())) * len(tasks)
    assert all(c.is_passed for c in cases)
    assert {c.classname for c in cases} == {f"parity.{t}.fp32" for t in ("torch", *quick_targets())}


# -- injected conversion bugs -------------------------------------------------------------------


def _weight_1pct(model):
    """One weight tensor changed by 1 %: the first stream's recurrent matrix."""
    rnn = model.rnn[model.streams[0]] if hasattr(model, "rnn") else model.rnns[model.streams[0]][0]
    with torch.no_grad():
        rnn.weight_hh_l0.mul_(1.01)
    return model


def _swap_gates(model):
    """GRU: reset and update gates swapped; LSTM: input and forget gates swapped."""
    for m in model.modules():
        if isinstance(m, torch.nn.GRU | torch.nn.LSTM):
            h = m.hidden_size
            for pname in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                p = getattr(m, pname)
                with torch.no_grad():
                    a, b = p[:h].clone(), p[h : 2 * h].clone()
                    p[:h], p[h : 2 * h] = b, a
    return model


def _fp16_overflow(model):
    """Same function in fp32, but weights and an intermediate 1e6 × their size: inf in fp16 (max 65504)."""
    first, head = (model.mlp[0], model.heads) if hasattr(model, "mlp") else (model.encoder, None)
    with torch.no_grad():
        first.weight.mul_(1e6)
        first.bias.mul_(1e6)
        if head is not None:  # DIPN: Linear → ReLU → heads, so scaling back after the ReLU is exact
            for h in head.values():
                h.weight.mul_(1e-6)
    return model


BUGS = {"weight_1pct": _weight_1pct, "gate_swap": _swap_gates, "mask_removed": None, "fp16_overflow": _fp16_overflow}


def _install_broken(bundle_dir, target, bug, precision, monkeypatch):
    bundle = load_bundle(bundle_dir)
    model = copy.deepcopy(load_model(bundle))
    if bug == "mask_removed":
        import edgeintent.toolkit.models.dipn as dipn_mod

        monkeypatch.setattr(dipn_mod, "length_mask", lambda lengths, t: torch.ones(lengths.shape[0], t, dtype=torch.bool))
    else:
        BUGS[bug](model)
    install_artifact(bundle, target, precision, model)
    monkeypatch.undo()


@pytest.mark.parametrize("target", quick_targets())
@pytest.mark.parametrize("bug", ["weight_1pct", "gate_swap", "mask_removed"])
def test_every_injected_bug_fails_parity(exported, tmp_path, monkeypatch, target, bug):
    path = copy_bundle(exported, "dipn", tmp_path)
    _install_broken(path, target, bug, "fp32", monkeypatch)
    res = CliRunner().invoke(main, ["parity", str(path), "--target", target, "--json"])
    assert res.exit_code == 1, res.output[-2000:]
    report = json.loads(res.stdout)
    failed = {(r["target"], r["output"]) for r in report["results"] if not r["passed"]}
    assert failed and {t for t, _ in failed} == {target}, failed
    if target == "onnx" and bug == "weight_1pct":
        node = next(r for r in report["results"] if not r["passed"])["first_divergent_node"]
        assert node["node"] and "gesture" in node["node"].lower() and node["op"] == "GRU", node


def test_lstm_gate_swap_fails_parity(exported, tmp_path, monkeypatch):
    path = copy_bundle(exported, "iidn", tmp_path)
    _install_broken(path, "mnn", "gate_swap", "fp32", monkeypatch)
    report = run_parity(path, ["mnn"])
    assert not report["passed"]
    assert all(not r["passed"] for r in report["results"] if r["target"] == "mnn")


@pytest.mark.parametrize("target", ["onnx", "coreml"])
def test_fp16_overflow_fails_parity_while_fp32_of_the_same_model_passes(exported, tmp_path, monkeypatch, target):
    path = copy_bundle(exported, "dipn", tmp_path)
    _install_broken(path, target, "fp16_overflow", "fp32", monkeypatch)
    _install_broken(path, target, "fp16_overflow", "fp16", monkeypatch)
    report = run_parity(path, [target])
    by = {(r["precision"], r["output"]): r for r in report["results"] if r["target"] == target}
    assert all(r["passed"] for (p, _), r in by.items() if p == "fp32"), by
    assert all(not r["passed"] for (p, _), r in by.items() if p == "fp16"), by
    if target == "coreml":  # fp16 arithmetic overflows to inf: reported as non-finite
        assert any("non-finite" in reason for r in by.values() for reason in r["reasons"]), [r["reasons"] for r in by.values()]


def test_parity_report_names_failing_target_and_output_in_text_mode(exported, tmp_path, monkeypatch):
    path = copy_bundle(exported, "dipn", tmp_path)
    _install_broken(path, "mnn", "weight_1pct", "fp32", monkeypatch)
    res = CliRunner().invoke(main, ["parity", str(path)])
    assert res.exit_code == 1
    assert "FAIL mnn fp32 buy_rt" in res.output and "parity: FAIL" in res.output


def test_compare_counts_nan_as_a_breach():
    ref = {"prob_t": np.array([0.1, 0.2, 0.3]), "logit_t": np.array([-2.0, -1.0, -0.5])}
    got = {"prob_t": np.array([0.1, np.nan, 0.3]), "logit_t": np.array([-2.0, np.nan, -0.5])}
    recorded = np.ones(3, bool)
    _, reasons = compare(ref, got, "t", None, recorded, tolerance("onnx", "fp32"))
    assert reasons and "non-finite" in reasons[0]
    _, reasons = compare(ref, ref, "t", None, recorded, tolerance("onnx", "fp32"))
    assert reasons == []


def test_compare_measures_auc_delta_only_with_enough_labels():
    rng = np.random.default_rng(0)
    logit = rng.normal(size=80)
    ref = {"prob_t": 1 / (1 + np.exp(-logit)), "logit_t": logit}
    labels = (logit + rng.normal(size=80) > 0).astype(np.int8)
    recorded = np.ones(80, bool)
    tol = tolerance("onnx", "fp32")
    m, _ = compare(ref, ref, "t", labels, recorded, tol)
    assert m["auc_delta"] == 0.0
    shuffled = {"prob_t": ref["prob_t"][::-1].copy(), "logit_t": ref["logit_t"][::-1].copy()}
    m, reasons = compare(ref, shuffled, "t", labels, recorded, tol)
    assert m["auc_delta"] > 0.05 and any("AUC moved" in r for r in reasons)
    few = np.where(np.arange(80) < 5, 1, 0).astype(np.int8)  # 5 positives: no AUC delta
    m, _ = compare(ref, ref, "t", few, recorded, tol)
    assert m["auc_delta"] is None
