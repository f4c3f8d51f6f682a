"""The LiteRT target: a dipn and an iidn bundle export to ``.tflite`` (litert-torch in the side env), pass
the parity gate in ai-edge-litert's interpreter at every golden length, refuse a longer window in one
line, and quantize with ai-edge-quantizer; on cpu-arm the same artifacts pass in ai-edge-litert's aarch64
wheel under qemu (the emulated tests share this file's exports: a conversion costs ~25 CPU-s).

litert-torch unrolls the recurrences to ``max_len``, so these bundles have short windows
(gesture 8, click 4, cloud 4): conversion time grows with the unrolled graph.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edgeintent.cli import main
from edgeintent.errors import ShapeRefused
from edgeintent.exporters import exported_artifacts, get_target, load_runner
from edgeintent.toolkit.bundle import load_bundle, load_model
from edgeintent.toolkit.features.spec import FitConfig
from edgeintent.toolkit.golden import golden_samples
from edgeintent.toolkit.models.exportable import feeds, torch_model, torch_outputs
from edgeintent.toolkit.training.trainer import TrainConfig, prepare, train_bundle
from tests.conftest import SRC

SHORT = FitConfig(max_len=(("gesture", 8), ("click", 4), ("cloud", 4)))

pytestmark = pytest.mark.skipif(bool(get_target("litert").missing() or get_target("litert").run_missing()),
                                reason=f"litert: {get_target('litert').missing() or get_target('litert').run_missing()}")  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """dipn and iidn (one epoch, short windows) exported to litert through the CLI."""
    from edgeintent.toolkit.data.sources import load_source

    root = tmp_path_factory.mktemp("litert")
    prep = prepare(load_source(SRC), 0, 0.2, fit=SHORT)
    out = {}
    for name in ("dipn", "iidn"):
        path = root / name
        train_bundle(name, SRC, path, TrainConfig(epochs=1, batch_size=128, patience=1, golden_rows=24), fit=SHORT, prepared=prep)
        res = CliRunner().invoke(main, ["export", str(path), "--target", "litert", "--json"])
        assert res.exit_code == 0, res.output[-2000:]
        out[name] = path
    return out


@pytest.mark.parametrize("name", ["dipn", "iidn"])
def test_litert_passes_parity_at_every_length_and_refuses_longer(exported, name):
    res = CliRunner().invoke(main, ["parity", str(exported[name]), "--target", "litert", "--json"])
    assert res.exit_code == 0, res.output[-3000:]
    report = json.loads(res.stdout)
    assert report["passed"]
    rows = [r for r in report["results"] if r["target"] == "litert"]
    assert {r["output"] for r in rows} == set(load_model(load_bundle(exported[name])).tasks)
    for r in rows:
        assert r["runtime"].startswith("LiteRT ") and r["passed"], r
        assert r["metrics"]["logit_max_abs"] <= 1e-5 and r["metrics"]["spearman"] > 0.9999, r
        assert "static shapes" in r["metrics"]["refusal"] and "\n" not in r["metrics"]["refusal"], r
    (meta,) = exported_artifacts(load_bundle(exported[name]), ["litert"])
    assert meta.extra["static_shapes"]["gesture"] == [1, 8, 14] and meta.extra["int_inputs"] == "int32"
    assert meta.extra["converter"]["litert-torch"] and meta.extra["litert_delegate"] == "xnnpack"


def test_session_pads_rows_casts_int32_and_refuses_longer_windows(exported):
    """A batch of rows of different lengths (trimmed to the longest) gives torch's outputs; a window one
    event longer than max_len is a one-line ShapeRefused; bench's runtime info names the delegate."""
    bundle = load_bundle(exported["dipn"])
    model = torch_model(load_model(bundle))
    (meta,) = exported_artifacts(bundle, ["litert"])
    samples = golden_samples(bundle.golden)
    f = feeds(model, samples, np.arange(10))  # int64 ids, streams cut to the batch's longest row
    assert f["gesture"].dtype == np.int64
    want = torch_outputs(model, f)
    with load_runner(bundle, meta) as runner:
        got = runner.run(f)
        for o in model.output_names():
            assert got[o].shape == want[o].shape == (10,)
            assert np.abs(got[o] - want[o]).max() < 1e-5, o
        longer = dict(f, click=np.concatenate([f["click"]] + [f["click"][:, -1:]] * (5 - f["click"].shape[1]), axis=1))
        assert longer["click"].shape[1] == 5
        with pytest.raises(ShapeRefused, match=r"takes click of shape at most \(batch, 4, 3\)") as err:
            runner.run(longer)
        assert "\n" not in str(err.value)
        info = runner._impl.info()
    assert info["delegate"] == "XNNPACK" and info["delegate_nodes"] >= 1 and info["ops"] > 50


def test_no_delegate_option_runs_builtin_kernels(exported, tmp_path):
    """``--set delegate=none`` is recorded and every runner opens the artifact without XNNPACK; same outputs."""
    bundle = load_bundle(exported["iidn"])
    (meta,) = exported_artifacts(bundle, ["litert"])
    plain = get_target("litert").artifact(bundle.path / meta.artifact, meta)
    from edgeintent.exporters import ArtifactMeta

    none = ArtifactMeta.from_json({**meta.to_json(), "litert_delegate": "none"})
    builtin = get_target("litert").artifact(bundle.path / meta.artifact, none)
    assert (plain.runtime, builtin.runtime) == ("litert", "litert-builtin")
    from edgeintent.runtimes import open_artifact

    model = torch_model(load_model(bundle))
    f = feeds(model, golden_samples(bundle.golden), np.arange(4))
    with open_artifact(plain) as a, open_artifact(builtin) as b:
        ga, gb = a.run(f), b.run(f)
        assert b._impl.info()["delegate"] == "none" and b._impl.info()["delegate_nodes"] == 0
    for o in model.output_names():
        assert np.abs(ga[o] - gb[o]).max() < 1e-5
    res = CliRunner().invoke(main, ["export", str(exported["iidn"]), "--target", "litert", "--set", "delegate=bogus"])
    assert res.exit_code == 2 and "delegate='bogus'" in res.output


def test_dynamic_int8_quantizes_and_passes_parity(exported, tmp_path):
    path = tmp_path / "dipn"
    shutil.copytree(exported["dipn"], path)
    res = CliRunner().invoke(main, ["quantize", str(path), "--target", "litert", "--mode", "dynamic-int8", "--runs", "20", "--json"])
    assert res.exit_code == 0, res.output[-2000:]
    report = json.loads(res.stdout)
    (cand,) = report["candidates"]
    assert report["installed"] == ["dynamic-int8"] and 0 < cand["bytes"] < report["fp32_bytes"]
    assert cand["latency"]["p50_ms"] > 0 and "dynamic_wi8_afp32" in cand["extra"]["quantization"]
    for t in cand["tasks"].values():
        assert 0 < t["logit_max_abs"] < 1.0  # int8 weights move the values, not far
    res = CliRunner().invoke(main, ["parity", str(path), "--target", "litert", "--json"])
    assert res.exit_code == 0, res.output[-3000:]
    rows = [r for r in json.loads(res.stdout)["results"] if r["precision"] == "dynamic-int8"]
    assert rows and all(r["passed"] for r in rows)


def test_missing_converter_is_one_line(monkeypatch, tmp_path):
    from edgeintent.exporters.litert import ENV_VAR

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "no-python"))
    assert "litert-torch not found" in get_target("litert").missing()


def test_bench_reports_the_delegate_and_op_count(exported):
    """bench on cpu-arm limits: a litert row with its status, and the runtime's own facts (delegate, ops)
    in the JSON row and the --wide table."""
    res = CliRunner().invoke(main, ["bench", str(exported["dipn"]), "--device", "cpu-arm", "--targets", "litert",
                                    "--runs", "20", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output[-3000:]
    report = json.loads(res.stdout)
    (row,) = [r for r in report["rows"] if r["target"] == "litert"]
    assert row["status"] == {"exported": True, "parity": "ok", "benched": True}
    assert row["runtime"].startswith("litert ") and row["measured"]["p50_ms"] > 0
    info = row["runtime_info"]
    assert info["delegate"] == "XNNPACK" and info["delegate_nodes"] >= 1 and info["ops"] > 50
    assert info["static_shapes"]["gesture"] == [1, 8, 14]
    from rich.console import Console

    from edgeintent.runtime_sim.report import bench_table

    con = Console(width=300, record=True, file=open("/dev/null", "w"))
    con.print(bench_table(report, wide=True))
    assert "delegate XNNPACK" in con.export_text()


# -- cpu-arm: ai-edge-litert's aarch64 wheel under emulation (the environment: tests/conftest.py arm_env) ----


def test_litert_in_the_worker_on_the_host_matches_the_host_session_bit_for_bit(exported):
    """The aarch64 worker's protocol on the host python: same outputs as the host session, to the bit; the
    refusal of a longer window comes back as one line; the worker reports the delegate it applied."""
    from edgeintent.exporters import artifact_of
    from edgeintent.parity import check_refusal, variant_batches
    from edgeintent.runtimes import emulation

    bundle = load_bundle(exported["iidn"])
    model = load_model(bundle)
    f = variant_batches(model, bundle)["trimmed"][0][1]
    (meta,) = exported_artifacts(bundle, ["litert"])
    want = load_runner(bundle, meta).run(f)
    with emulation.host_worker(artifact_of(bundle, meta)) as worker:
        got = worker.run(f)
        info = worker._impl.details()
        longer = {k: np.concatenate([v, v[:, -1:]], axis=1) if k == "click" else v for k, v in f.items()}
        with pytest.raises(ShapeRefused, match=r"litert artifact takes click of shape at most") as err:
            worker.run({k: v[:1] for k, v in longer.items()})
        assert "\n" not in str(err.value)
        assert check_refusal(worker.run, model, variant_batches(model, bundle))[1] is None
        # only the artifact's own refusal counts: a runner that fails otherwise (its process died) is not one
        worker._impl.proc.kill()
        worker._impl.proc.wait()
        msg, why = check_refusal(worker.run, model, variant_batches(model, bundle))
        assert msg == "" and "failed instead of a refusal" in why and "died" in why
    assert info["delegate"] == "XNNPACK" and info["delegate_nodes"] >= 1
    assert set(got) == set(want) == set(meta.outputs)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dipn", "iidn"])
def test_litert_parity_on_cpu_arm_runs_the_aarch64_wheel(arm_env, exported, name):
    """The .tflite in ai-edge-litert's aarch64 build (XNNPACK) under emulation: the fp32 bounds at every
    golden length (padded to the static shape), and a longer window refused in one line."""
    from edgeintent.exporters import artifact_of
    from edgeintent.parity import variant_batches
    from edgeintent.parity.policy import tolerance
    from edgeintent.runtimes import RUNTIMES, emulation

    assert arm_env.info["probe"]["ai-edge-litert"] == RUNTIMES.get("litert").version()
    res = CliRunner().invoke(main, ["parity", str(exported[name]), "--target", "litert", "--device", "cpu-arm", "--json"])
    assert res.exit_code == 0, res.output[-3000:]
    report = json.loads(res.stdout)
    assert report["passed"] and report["device"] == "cpu-arm"
    rows = [r for r in report["results"] if r["target"] == "litert"]
    assert {r["output"] for r in rows} == set(load_model(load_bundle(exported[name])).tasks)
    tol = tolerance("litert", "fp32", arch="aarch64")
    for r in rows:
        assert r["arch"] == "aarch64" and r["runtime"].startswith("LiteRT ") and "cortex-a76" in r["runtime"], r
        assert r["metrics"]["prob_max_abs"] <= tol.prob_abs and r["metrics"]["logit_max_abs"] <= tol.logit_abs, r
        assert "litert artifact takes" in r["metrics"]["refusal"] and "\n" not in r["metrics"]["refusal"], r
    if name == "dipn":  # the aarch64 interpreter applies XNNPACK too
        bundle = load_bundle(exported[name])
        (meta,) = exported_artifacts(bundle, ["litert"])
        with emulation.ArmProvider(arm_env).open(artifact_of(bundle, meta)) as session:
            assert session.arch == "aarch64"
            session.run(variant_batches(load_model(bundle), bundle)["batch1"][0][1])
            info = session._impl.details()
        assert info["delegate"] == "XNNPACK" and info["delegate_nodes"] >= 1, info
