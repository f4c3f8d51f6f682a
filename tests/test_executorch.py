"""The executorch target: static-shape .pte programs in ExecuTorch's Python runtime.

dipn (GRUs, XNNPACK delegate: the default) and iidn (2-layer LSTMs, portable kernels) pass the parity
gate, with every golden variant padded to the static shapes and a longer window refused in one line.
The bundles are trained on two streams (click, cloud: max_len 20 each) and exported with ``rnn=scan``
(edgeintent/exporters/recurrence.py) so that each export stays a few CPU-seconds; the default
``rnn=unrolled`` (the faster program, ~110 CPU-s for a three-stream dipn) is measured by
benchmarks/executorch_variants.py.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("executorch")

from edgeintent.cli import main  # noqa: E402
from edgeintent.errors import ConfigError, ExportError  # noqa: E402
from edgeintent.exporters import export_bundle, load_runner  # noqa: E402
from edgeintent.exporters.recurrence import ScanRNN, scanned  # noqa: E402
from edgeintent.quantization.capabilities import capability_table  # noqa: E402
from edgeintent.toolkit.bundle import load_bundle, load_model  # noqa: E402
from edgeintent.toolkit.golden import golden_samples  # noqa: E402
from edgeintent.toolkit.models.exportable import feeds, torch_outputs  # noqa: E402

BACKEND = {"dipn": "xnnpack", "iidn": "portable"}
STREAMS = ("click", "cloud")


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("executorch")
    out = {}
    for name in BACKEND:
        out[name] = root / name
        shutil.copytree(trained(name, streams=STREAMS), out[name])
        out[name, "meta"] = export_bundle(out[name], "executorch", options={"backend": BACKEND[name], "rnn": "scan"})
    return out


@pytest.mark.parametrize("cell", [torch.nn.GRU, torch.nn.LSTM])
def test_scan_rnn_matches_torch_and_shares_its_weights(cell):
    torch.manual_seed(0)
    rnn = cell(5, 7, batch_first=True).eval()
    x = torch.randn(3, 11, 5)
    ref, got = rnn(x), ScanRNN(rnn)(x)
    assert torch.allclose(ref[0], got[0], atol=1e-6)
    for a, b in zip(ref[1] if isinstance(ref[1], tuple) else (ref[1],), got[1] if isinstance(got[1], tuple) else (got[1],), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    wrapper = torch.nn.Sequential(rnn)
    assert isinstance(scanned(wrapper)[0], ScanRNN) and isinstance(wrapper[0], cell)  # a copy; the model is untouched
    with pytest.raises(ValueError, match="single-layer"):
        ScanRNN(cell(5, 7, num_layers=2, batch_first=True))


@pytest.mark.parametrize("name", list(BACKEND))
def test_executorch_passes_parity_and_refuses_a_longer_window(exported, name):
    res = CliRunner().invoke(main, ["parity", str(exported[name]), "--target", "executorch", "--json"])
    assert res.exit_code == 0, res.output[-3000:]
    report = json.loads(res.output)
    rows = [r for r in report["results"] if r["target"] == "executorch"]
    assert report["passed"] and len(rows) == len(load_model(load_bundle(exported[name])).tasks)
    for r in rows:
        assert r["runtime"].startswith("ExecuTorch 1.")
        assert r["metrics"]["logit_max_abs"] <= 1e-5 and r["metrics"]["spearman"] > 0.9999, r["metrics"]
        assert r["metrics"]["refusal"].startswith("executorch artifact takes ") and "static shapes" in r["metrics"]["refusal"]


@pytest.mark.parametrize("name", list(BACKEND))
def test_the_program_is_static_and_the_session_pads_and_splits_rows(exported, name):
    meta = exported[name, "meta"]
    bundle = load_bundle(exported[name])
    model = load_model(bundle)
    spec = bundle.spec
    assert meta.extra["backend"] == BACKEND[name] and meta.extra["rnn"] == "scan"
    assert meta.extra["planned_memory_bytes"] > 0
    assert (meta.extra["delegate_calls"] > 0) == (BACKEND[name] == "xnnpack")
    assert model.streams == STREAMS
    for s in model.streams:
        assert meta.extra["static_shapes"][s][:2] == [1, spec.max_len[s]]
    # three rows of different lengths, each stream cut to its longest row (shorter than max_len)
    samples = golden_samples(bundle.golden)
    f = feeds(model, samples, np.arange(3))
    assert any(f[s].shape[1] < spec.max_len[s] for s in model.streams)
    runner = load_runner(bundle, meta)
    got, ref = runner.run(f), torch_outputs(model, f)
    for k in ref:
        assert got[k].shape == ref[k].shape == (3,)
        assert np.abs(got[k] - ref[k]).max() <= 1e-5, k
    s = model.streams[0]
    too_long = dict(f, **{s: np.concatenate([f[s]] + [f[s][:, -1:]] * (spec.max_len[s] + 1 - f[s].shape[1]), axis=1)})
    with pytest.raises(ExportError, match=f"takes {s} of shape at most"):
        runner.run(too_long)


def test_capability_row_is_honest_and_bad_options_are_one_line(exported):
    row = next(r for r in capability_table() if r["target"] == "executorch")
    assert row["extension"] == ".pte" and row["precisions"] == ["fp32"]
    assert row["dynamic_batch"] is False and row["dynamic_length"] is False
    assert row["exports_here"] and row["runs_here"]
    with pytest.raises(ConfigError, match="backend must be one of xnnpack, portable"):
        export_bundle(exported["dipn"], "executorch", options={"backend": "vulkan"})
    with pytest.raises(ConfigError, match="rnn must be one of scan, unrolled"):
        export_bundle(exported["dipn"], "executorch", options={"rnn": "loop"})
    res = CliRunner().invoke(main, ["export", str(exported["dipn"]), "--target", "executorch", "--set", "rnn=loop"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output


def test_quantize_refuses_in_one_line_and_the_row_says_why(exported):
    row = next(r for r in capability_table() if r["target"] == "executorch")
    assert row["quantization"] == [] and "PT2E" in row["quantization_refused"]
    for mode in ("auto", "int8"):
        res = CliRunner().invoke(main, ["quantize", str(exported["dipn"]), "--target", "executorch", "--mode", mode])
        assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
        assert "executorch has no quantization" in res.output


def test_bench_reports_the_etdump_profile_and_planned_memory(exported):
    from edgeintent.runtime_sim.bench import BenchConfig, run_bench
    from edgeintent.runtime_sim.report import bench_table, details_text

    rep = run_bench(exported["dipn"], BenchConfig(device="host", targets=("executorch",), runs=5, warmup=1, profile_runs=3))
    row = next(r for r in rep["rows"] if r["target"] == "executorch")
    assert row["status"]["benched"] is True
    d = row["runtime_details"]
    assert d["planned_memory_bytes"] == exported["dipn", "meta"].extra["planned_memory_bytes"] > 0
    prof = d["op_profile"]
    assert prof["runs"] == 3 and prof["events_per_run"] > 0 and prof["execute_ms"] > 0
    assert prof["delegate_ms"] > 0  # the XNNPACK delegate ran
    assert prof["top_ops"] and sum(o["share"] for o in prof["top_ops"]) <= 1.0
    assert any(o["op"].startswith("Fully Connected") for o in prof["top_ops"]), prof["top_ops"]  # an XNNPACK node
    assert "planned" in details_text(d) and "top ops" in details_text(d)
    assert "runtime_details" not in next(r for r in rep["rows"] if r["target"] == "torch")
    bench_table(rep, wide=True)  # renders
