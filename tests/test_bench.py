"""Bench and the runtime simulator: limits really applied, every report field present and labelled,
devices.md in step with the table, the memory budget, the JSON schema, deterministic counts.

Correctness, not timing: no assertion here depends on how fast this machine is.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeintent.cli import main
from edgeintent.exporters import artifact_of, export_bundle, exported_artifacts, get_target, load_runner
from edgeintent.runtime_sim import devices as D
from edgeintent.runtime_sim import project
from edgeintent.runtime_sim.bench import SCHEMA, BenchConfig, parse_callgrind_dir, run_bench
from edgeintent.runtimes.child import run_child
from edgeintent.runtimes.limits import pick_cpus
from edgeintent.toolkit.bundle import load_bundle
from edgeintent.toolkit.golden import golden_samples
from edgeintent.toolkit.bundle import load_model

ROOT = Path(__file__).resolve().parents[1]
HAS_MNN = get_target("mnn").run_missing() is None
TARGETS = ["onnx"] + (["mnn"] if HAS_MNN else [])


@pytest.fixture(scope="module")
def bundle(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "dipn"
    shutil.copytree(trained("dipn"), out)
    for t in TARGETS:
        export_bundle(out, t, "fp32")
    return out


@pytest.fixture(scope="module")
def report(bundle):
    """One `edgeintent bench --json` run through the CLI (parity included)."""
    res = CliRunner().invoke(main, ["bench", str(bundle), "--device", "cpu-arm", "--runs", "200", "--warmup", "5", "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


# --- devices ------------------------------------------------------------------------------------


def _devices_md_rows() -> dict[str, list[str]]:
    text = (ROOT / "devices.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in D.DEVICES:
            rows.setdefault(cells[0], cells)  # the profile table comes first; later tables name profiles too
    return rows


def test_devices_md_matches_the_table_value_for_value():
    rows = _devices_md_rows()
    assert set(rows) == set(D.DEVICES), "devices.md lists other profiles than devices.py"
    for name, p in D.DEVICES.items():
        c = rows[name]
        assert c[1] == p.core and int(c[2]) == p.threads and int(c[3]) == p.cores, name
        assert float(c[4]) == p.gb5_single and float(c[5]) == p.bandwidth_gbs, name
        assert int(c[6]) == p.memory_mb and c[7] == p.runtime and c[8] == p.reference_device, name
        assert (c[9] == "host") if p.calib_ms is None else float(c[9]) == p.calib_ms, name
    text = (ROOT / "devices.md").read_text()
    assert f"÷ {D.HOST_GB5_SINGLE:g}" in text
    for needed in ("thermal throttling", "big.LITTLE", "Caches", "projected on DEVICE", "estimate"):
        assert needed.lower() in text.lower(), needed


def test_profiles_cover_the_issue_and_default_runtimes_are_targets():
    from edgeintent.exporters import list_targets

    assert {"cpu-arm", "cpu-arm-little", "cpu-arm-low", "iphone", "host"} <= set(D.DEVICES)
    for p in D.list_devices():
        assert p.runtime in list_targets() and p.threads >= 1 and p.memory_mb > 0
    from edgeintent.runtime_sim.host import HostRecord

    host = HostRecord("fake", "", 2000.0, "AVX2", "x86_64", calib_ms=1.5, calib_runs=1, bandwidth_gbs=16.0)
    assert D.get_device("host").speed_vs(host) == 1.0
    assert D.get_device("cpu-arm-low").speed_vs(host) < D.get_device("cpu-arm").speed_vs(host) < D.get_device("iphone").speed_vs(host)
    with pytest.raises(ValueError, match="already registered"):
        D.DEVICES.register("host", D.get_device("host"))


def test_devices_cli_lists_every_profile_and_is_a_group():
    import click

    assert isinstance(main.commands["devices"], click.Group)
    res = CliRunner().invoke(main, ["devices", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert set(rows) == set(D.DEVICES)
    host = rows["cpu-arm"]["host"]
    assert host["calib_ms"] > 0 and host["simd"] and host["cpu"]
    assert rows["cpu-arm"]["speed_vs_host"] == pytest.approx(host["calib_ms"] / D.get_device("cpu-arm").calib_ms, abs=1e-3)
    res = CliRunner().invoke(main, ["devices"])
    assert res.exit_code == 0 and all(n in res.output for n in D.DEVICES)


def test_unknown_device_is_one_line_and_exit_2(bundle):
    res = CliRunner().invoke(main, ["bench", str(bundle), "--device", "pixel-99"])
    assert res.exit_code == 2 and "unknown device 'pixel-99'" in res.output


# --- the report ---------------------------------------------------------------------------------


def test_json_schema_and_every_field_labelled(report, bundle):
    assert report["schema"] == SCHEMA
    for key in ("bundle", "model", "device", "limits", "request", "featurizer", "projection", "rows", "summary"):
        assert key in report, key
    dev = report["device"]["name"]
    meas_label = f"measured on host under {dev} limits"
    assert report["projection"]["label"] == f"projected on {dev}"
    assert report["featurizer"]["label"].startswith(meas_label)
    assert report["featurizer"]["projected"]["label"] == f"projected on {dev}"
    rows = {(r["target"], r["precision"]): r for r in report["rows"]}
    assert ("torch", "fp32") in rows and rows[("torch", "fp32")]["reference"]
    for t in TARGETS:
        r = rows[(t, "fp32")]
        assert r["status"] == {"exported": True, "parity": "ok", "benched": True}
        m, p = r["measured"], r["projected"]
        assert m["label"].startswith(meas_label) and p["label"] == f"projected on {dev}"
        for k in ("init_ms", "first_ms", "warmup_mean_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms"):
            assert m[k] > 0, k
        assert m["runs"] == 200 and m["p50_ms"] <= m["p90_ms"] <= m["p99_ms"]
        assert r["artifact_bytes"] == (bundle / r["artifact"]).stat().st_size  # .onnx / .mnn are single files
        assert r["peak_rss_bytes"] > r["model_rss_bytes"] > 0
        fac = report["projection"]["factor"]
        # projected from the steady runs' process CPU time (other processes' turns on the core left out)
        assert 0 < m["cpu"]["min_ms"] <= m["cpu"]["p50_ms"] <= m["cpu"]["p99_ms"]
        assert p["p50_ms"] == pytest.approx(m["cpu"]["min_ms"] * fac) and p["first_ms"] == pytest.approx(m["first_ms"] * fac)
        assert p["p50_ms"] <= p["p90_ms"] <= p["p99_ms"]
        feat = report["featurizer"]["p50_ms"]
        feat_cpu = report["featurizer"]["cpu"]["min_ms"]
        assert r["featurizer_ms"]["measured"] == pytest.approx(feat)
        assert r["request_ms"]["measured"] == pytest.approx(feat + m["p50_ms"])
        assert r["request_ms"]["projected"] == pytest.approx(feat_cpu / report["projection"]["speed"] + p["p50_ms"])
        assert 0 < r["featurizer_share"]["measured"] < 1 and 0 < r["featurizer_share"]["projected"] < 1
        assert r["speedup_vs_torch_eager"] > 0
    proj = report["projection"]
    assert proj["factor"] == pytest.approx(project.factor(proj["speed"], proj["bandwidth"], proj["memory_share"]))
    # the host measured and recorded, the precision and the uncertainty said
    host = report["host"]
    assert host == proj["host"] and host["calib_ms"] > 0 and host["calib_runs"] > 0 and host["simd"] and host["cpu"]
    assert proj["speed"] == pytest.approx(host["calib_ms"] / D.get_device("cpu-arm").calib_ms)
    assert proj["precision"] == "fp32" and "fp16" in proj["precision_note"]
    lo, hi = proj["uncertainty"]["check_ratio_range"]
    assert 0 < lo < 1 < hi
    for r in (r for r in report["rows"] if "projected" in r):
        a, b = r["projected"]["p50_ms_range"]
        assert r["projected"]["precision"] == "fp32"
        assert a == pytest.approx(r["projected"]["p50_ms"] / hi) and b == pytest.approx(r["projected"]["p50_ms"] / lo)
    assert 0 < proj["memory_share"] < 1 and "onnxruntime profile" in proj["memory_share_from"]
    assert report["request"]["window_events"] and sum(report["request"]["window_events"].values()) > 0
    s = report["summary"]
    assert s["default_target"] == "mnn" and s["fastest"] is not None


#: every field of the first edgeintent.bench/1 report (commit 9f64066, where the schema label was introduced):
#: key → its JSON type, or the fields of the object under it. Within /1 fields are only added; a field here
#: never disappears, changes name or changes type (a change that does bumps SCHEMA; docs/bench.md).
NUM, STR, BOOL, LIST, OBJ = (int, float), str, bool, list, dict
_STATS = {"runs": int, "p50_ms": NUM, "p90_ms": NUM, "p99_ms": NUM, "mean_ms": NUM, "min_ms": NUM, "std_ms": NUM}
BENCH_V1 = {
    "schema": STR, "bundle": STR, "model": STR, "runs": int, "warmup": int,
    "device": {"name": STR, "description": STR, "core": STR, "threads": int, "cores": int, "gb5_single": NUM,
               "bandwidth_gbs": NUM, "memory_mb": int, "runtime": STR, "reference_device": STR, "speed_vs_host": NUM,
               "bandwidth_vs_host": NUM, "memory_budget_mb_applied": NUM},
    "limits": {"label": STR, "threads": int, "cpus": LIST, "memory_budget_mb": NUM, "how": STR},
    "request": {"source": STR, "user_id": int, "t_ms": int, "window_events": OBJ, "raw_events_held": OBJ, "feeds": OBJ},
    "featurizer": {"label": STR, **_STATS, "first_ms": NUM, "projected": {"label": STR, "p50_ms": NUM},
                   "peak_rss_bytes": int},
    "projection": {"label": STR, "method": STR, "speed": NUM, "bandwidth": NUM, "memory_share": NUM,
                   "memory_share_from": STR, "factor": NUM, "featurizer_factor": NUM, "ignores": STR},
    "summary": {"fastest": STR, "default_target": STR, "default_artifact": STR, "default_vs_fastest_p50": NUM,
                "default_speedup_vs_torch_eager": NUM, "default_timed_here": BOOL},
}  # fmt: skip
#: every field of a benched row in the first /1 report (a row that was not benched has the first seven)
BENCH_V1_ROW = {
    "target": STR, "precision": STR, "runtime": STR, "reference": BOOL, "artifact": STR, "artifact_bytes": int,
    "status": {"exported": BOOL, "parity": STR, "benched": BOOL},
    "measured": {"label": STR, "init_ms": NUM, "first_ms": NUM, "warmup_runs": int, "warmup_mean_ms": NUM, **_STATS},
    "peak_rss_bytes": int, "model_rss_bytes": int,
    "limits_observed": {"affinity": LIST, "runtime_threads": int, "os_threads_before_load": int,
                        "os_threads_after_load": int, "os_threads_running": int, "address_space_cap_bytes": int},
    "outputs": OBJ,
    "projected": {"label": STR, "first_ms": NUM, "p50_ms": NUM, "p90_ms": NUM, "p99_ms": NUM, "mean_ms": NUM},
    "featurizer_ms": {"measured": NUM, "projected": NUM}, "request_ms": {"measured": NUM, "projected": NUM, "label": STR},
    "featurizer_share": {"measured": NUM, "projected": NUM}, "speedup_vs_torch_eager": NUM,
}  # fmt: skip


def _v1_problems(obj: dict, spec: dict, where: str = "") -> list[str]:
    """The /1 fields ``obj`` lacks or holds with another JSON type (None is allowed: the field may be empty)."""
    out = []
    for key, want in spec.items():
        path = f"{where}{key}"
        if key not in obj:
            out.append(f"{path} missing")
        elif isinstance(want, dict):
            out += _v1_problems(obj[key], want, path + ".") if isinstance(obj[key], dict) else [f"{path} is not an object"]
        elif obj[key] is not None and (not isinstance(obj[key], want) or (want is not BOOL and isinstance(obj[key], bool))):
            out.append(f"{path} is a {type(obj[key]).__name__}, /1 had {want}")
    return out


def test_the_report_keeps_every_field_of_schema_1(report):
    """The fields added since the label was introduced (host, featurizer_kit, measured.cpu, runtime_api, …)
    are additions: a reader of the first /1 report finds every field it knew, with its type, so the label holds."""
    assert report["schema"] == SCHEMA == "edgeintent.bench/1"
    problems = _v1_problems(report, BENCH_V1)
    benched = [r for r in report["rows"] if r["status"]["benched"] is True]
    assert benched
    for r in benched:
        problems += _v1_problems(r, BENCH_V1_ROW, f"rows[{r['target']} {r['precision']}].")
    assert not problems, problems
    # and the check can fail: a renamed field is caught
    renamed = dict(report, projection={k if k != "speed" else "speed_x": v for k, v in report["projection"].items()})
    assert _v1_problems(renamed, BENCH_V1) == ["projection.speed missing"]


def test_the_default_table_fits_80_columns_and_wide_shows_every_column(report):
    from rich.console import Console

    from edgeintent.runtime_sim.report import COMPACT, bench_table

    def render(wide: bool) -> str:
        con = Console(width=80 if not wide else 250, record=True, file=open("/dev/null", "w"))
        con.print(bench_table(report, wide=wide))
        return con.export_text()

    compact = render(False)
    assert max(len(line) for line in compact.splitlines()) <= 80
    for word in ("target", "status", "p50", "p99", "RSS", "request", "featur.", "share"):
        assert word in compact, word  # every column is there, none cut off at the edge
    for row in report["rows"]:
        if "measured" in row:
            p50 = row["measured"]["p50_ms"]  # as the table prints it: 3 decimals below 10 ms, 1 from there on
            assert (f"{p50:.3f}" if p50 < 10 else f"{p50:.1f}")[:4] in compact
    assert "p90" not in compact
    assert bench_table(report).columns.__len__() == len(COMPACT)
    wide = render(True)
    assert "p90" in wide and "vs" in wide
    assert len(bench_table(report, wide=True).columns) > len(COMPACT)


def test_the_c_kit_featurizer_row_beside_pythons(report):
    kit = report["featurizer_kit"]
    assert kit["matches_python"] and kit["runs"] >= 2000 and 0 < kit["min_ms"] <= kit["p50_ms"] <= kit["p90_ms"]
    assert kit["events"] == sum(report["request"]["raw_events_held"].values())
    assert kit["projected"]["p50_ms"] == pytest.approx(kit["min_ms"] / report["projection"]["speed"])
    for r in (r for r in report["rows"] if "measured" in r):
        share = r["featurizer_share_kit"]["measured"]
        assert share == pytest.approx(kit["p50_ms"] / (kit["p50_ms"] + r["measured"]["p50_ms"]))
        assert share < r["featurizer_share"]["measured"]


def test_exported_outputs_in_the_children_agree_with_torch(report):
    rows = [r for r in report["rows"] if "outputs" in r]
    assert len(rows) >= 3, [r["target"] for r in report["rows"]]  # torch and at least two exported runtimes
    ref = next(r for r in rows if r["reference"])["outputs"]
    for r in rows:
        for k, v in ref.items():
            np.testing.assert_allclose(r["outputs"][k], v, atol=1e-4, err_msg=f"{r['target']} {k}")


def test_limits_are_observed_in_the_child(report):
    want = list(pick_cpus(1))
    rows = [r for r in report["rows"] if "limits_observed" in r]
    assert any(r["reference"] for r in rows) and any(not r["reference"] for r in rows), [r["target"] for r in rows]
    for r in rows:
        obs = r["limits_observed"]
        assert obs["affinity"] == want, r["target"]
        assert obs["runtime_threads"] == 1
        # one runtime thread: loading the model started no thread pool
        assert obs["os_threads_after_load"] == obs["os_threads_before_load"], r["target"]
        if not r["reference"]:
            assert obs["address_space_cap_bytes"] is not None
            assert obs["address_space_cap_bytes"] >= 64 * 2**20


def test_thread_count_reaches_the_runtime(bundle, tmp_path):
    """Two threads: onnxruntime's intra-op pool adds exactly one OS thread; one thread adds none."""
    b = load_bundle(bundle)
    meta = next(m for m in exported_artifacts(b, ["onnx"]))
    model = load_model(b)
    from edgeintent.toolkit.models.exportable import feeds

    np.savez(tmp_path / "feeds.npz", **feeds(model, golden_samples(b.golden), np.arange(1)))
    cpus = sorted(__import__("os").sched_getaffinity(0))
    added = {}
    for threads in (1, 2):
        job = {"kind": "model", "threads": threads, "cpus": cpus[:threads] if len(cpus) >= threads else cpus,
               "memory_bytes": None, "runs": 3, "warmup": 1, "feeds": str(tmp_path / "feeds.npz"),
               "artifact": asdict(artifact_of(b, meta))}  # fmt: skip
        code, res, _ = run_child(job, tmp_path, f"t{threads}", threads)
        assert code == 0, res
        added[threads] = res["os_threads_after_load"] - res["os_threads_before_load"]
        assert res["affinity"] == job["cpus"]
    assert added == {1: 0, 2: 1}


def test_memory_budget_smaller_than_the_model_exits_2(bundle):
    res = CliRunner().invoke(main, ["bench", str(bundle), "--targets", "onnx", "--no-parity", "--runs", "5", "--memory-mb", "1"])
    assert res.exit_code == 2, res.output
    line = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "exceeds the device's memory budget" in line[0] and "1 MB" in line[0]
    assert "Traceback" not in res.output


@pytest.mark.skipif(not HAS_MNN, reason="MNN is not installed")
def test_memory_budget_on_mnn_which_aborts_instead_of_raising(bundle):
    res = CliRunner().invoke(main, ["bench", str(bundle), "--targets", "mnn", "--no-parity", "--runs", "5", "--memory-mb", "1"])
    assert res.exit_code == 2 and "exceeds the device's memory budget" in res.output, res.output


def test_plot_is_a_png_written_atomically(bundle, tmp_path):
    out = tmp_path / "lat.png"
    rep = run_bench(bundle, BenchConfig(device="host", targets=("onnx",), runs=30, warmup=2), plot=out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and rep["plot"] == str(out)
    assert not list(tmp_path.glob(".lat.png.*"))
    onnx = next(r for r in rep["rows"] if r["target"] == "onnx")
    assert onnx["status"]["parity"] == "not run" and onnx["projected"]["label"] == "projected on host"


@pytest.mark.skipif(not HAS_MNN, reason="MNN is not installed")
def test_bench_opens_mnn_artifacts_with_their_recorded_api_and_precision(bundle, tmp_path):
    """A While-loop artifact runs only through MNN's Module API, and fp16 runs at precision low: bench's
    measuring process opens each artifact the way its metadata says, as parity does."""
    path = tmp_path / "loop"
    shutil.copytree(bundle, path)
    export_bundle(path, "mnn", "fp16", {"rnn": "while-loop"})
    rep = run_bench(path, BenchConfig(device="host", targets=("mnn",), runs=3, warmup=1))
    rows = {r["precision"]: r for r in rep["rows"] if r["target"] == "mnn"}
    assert (rows["fp32"]["runtime_api"], rows["fp32"]["runtime_precision"]) == ("mnn-session", "normal")
    loop = rows["fp16"]
    assert loop["status"]["benched"] is True and (loop["runtime_api"], loop["runtime_precision"]) == ("mnn-module", "low")
    ref = rows["fp32"]["outputs"]
    assert loop["outputs"] and set(loop["outputs"]) == set(ref)
    for k, v in loop["outputs"].items():
        assert np.abs(np.asarray(v) - np.asarray(ref[k])).max() < 1e-2, k


def test_bench_without_exports_says_how_to_export(tmp_path, trained):
    bare = tmp_path / "bare"
    shutil.copytree(trained("dipn"), bare)
    res = CliRunner().invoke(main, ["bench", str(bare)])
    assert res.exit_code == 2 and "edgeintent export" in res.output


# --- runners and featurizer ---------------------------------------------------------------------


def test_the_measuring_child_runs_the_artifact_as_every_runner_does(bundle, tmp_path):
    """The child opens each artifact through the same runtime registry as parity: same outputs."""
    from edgeintent.toolkit.models.exportable import feeds

    b = load_bundle(bundle)
    model = load_model(b)
    f = feeds(model, golden_samples(b.golden), np.arange(1))
    np.savez(tmp_path / "feeds.npz", **f)
    metas = exported_artifacts(b)
    assert metas
    for meta in metas:
        job = {"kind": "model", "threads": 1, "cpus": sorted(__import__("os").sched_getaffinity(0))[:1], "memory_bytes": None,
               "runs": 1, "warmup": 0, "feeds": str(tmp_path / "feeds.npz"), "artifact": asdict(artifact_of(b, meta))}  # fmt: skip
        code, res, _ = run_child(job, tmp_path, meta.target, 1)
        assert code == 0, res
        theirs = load_runner(b, meta).run(f)
        for k in theirs:
            np.testing.assert_array_equal(np.asarray(res["outputs"][k]), np.asarray(theirs[k], np.float64).reshape(-1),
                                          err_msg=f"{meta.target} {k}")  # fmt: skip


@pytest.mark.parametrize("precision,level", [("fp32", "ORT_ENABLE_ALL"), ("fp16", "ORT_ENABLE_EXTENDED")])
def test_ort_session_options(precision, level):
    """One set of options for exporters, bench and the ARM worker: the requested intra-op threads, one
    inter-op thread, quiet logs, and fp16 sessions below ORT_ENABLE_ALL (which crashes onnxruntime 1.32)."""
    import onnxruntime as ort

    from edgeintent.runtimes.sessions import ort_session_options

    so = ort_session_options(precision, 3)
    assert (so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level) == (3, 1, 3)
    assert so.graph_optimization_level == getattr(ort.GraphOptimizationLevel, level)
    assert not so.enable_profiling
    assert ort_session_options(precision, 1, profile_prefix="/tmp/x").enable_profiling


def test_featurize_request_equals_build_samples(bundle):
    from edgeintent.toolkit.features.request import featurize_request, pick_request
    from edgeintent.toolkit.features import build_samples
    from edgeintent.toolkit.data.sources import load_source

    spec = load_bundle(bundle).spec
    ds = load_source("sim:120:5")
    samples = build_samples(ds.events, spec, ds.decisions)
    req = pick_request(ds.events, samples, spec, spec.streams)
    got = featurize_request(req.tables, spec, req.t_ms)
    for s in spec.streams:
        np.testing.assert_array_equal(got[s]["x"][0], samples.x[s][req.row], err_msg=s)
        assert got[s]["length"][0] == samples.length[s][req.row]
        np.testing.assert_array_equal(got[s]["age_ms"][0], samples.age_ms[s][req.row])
    assert all(t.num_rows <= spec.max_len[s] + 1 for s, t in req.tables.items())


# --- deterministic ------------------------------------------------------------------------------


def test_callgrind_dump_parser(tmp_path):
    (tmp_path / "callgrind.out.7").write_text("part: 3\ndesc: Trigger: Program termination\nsummary: 5\n")
    (tmp_path / "callgrind.out.7.1").write_text("part: 1\ndesc: Trigger: dump\nsummary: 1000\n")
    (tmp_path / "callgrind.out.7.2").write_text("part: 2\ndesc: Trigger: dump\nsummary: 2500\n")
    assert parse_callgrind_dir(tmp_path) == {1: 1000, 2: 2500}
    # --separate-threads=yes: one file per thread and part; a thread is picked, or all are summed
    threads = tmp_path / "threads"
    threads.mkdir()
    for name, part, tid, n in (("callgrind.out.7.1-01", 1, 1, 10), ("callgrind.out.7.2-01", 2, 1, 700),
                               ("callgrind.out.7.2-02", 2, 2, 33), ("callgrind.out.7-01", 3, 1, 9)):  # fmt: skip
        trigger = "Program termination" if part == 3 else "--dump-before=getsid"
        (threads / name).write_text(f"part: {part}\nthread: {tid}\ndesc: Trigger: {trigger}\nsummary: {n}\n")
    assert parse_callgrind_dir(threads, thread=1) == {1: 10, 2: 700}
    assert parse_callgrind_dir(threads) == {1: 10, 2: 733}


def test_deterministic_without_valgrind_says_how_to_install(bundle, monkeypatch):
    import edgeintent.runtime_sim.bench as B

    real = shutil.which
    monkeypatch.setattr(B.shutil, "which", lambda name, *a, **k: None if name == "valgrind" else real(name, *a, **k))
    res = CliRunner().invoke(main, ["bench", str(bundle), "--targets", "onnx", "--no-parity", "--deterministic"])
    assert res.exit_code == 2 and "apt-get install -y valgrind" in res.output
    assert len([ln for ln in res.output.splitlines() if ln.startswith("error:")]) == 1


def test_no_torch_in_the_onnx_measuring_process(bundle, tmp_path):
    """The light runners keep torch out of the RSS of an onnxruntime measurement."""
    import subprocess
    import sys

    code = ("import sys; from edgeintent.runtimes import child, limits, sessions; from edgeintent.toolkit.features import request; "
            "assert 'torch' not in sys.modules, 'torch imported'")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert re.search(r"import torch", (ROOT / "edgeintent/runtimes/child.py").read_text()) is None


def test_bench_scales_by_the_host_record_it_reports(bundle, monkeypatch):
    """Bench projects with the host record it puts in its report: a faked host whose calibration block is 1.7x
    slower projects the same measured CPU time 1.7x faster, so a 1.7x slower host measuring the model 1.7x
    slower projects the same phone time (tests/test_projection.py checks that arithmetic on every profile)."""
    import edgeintent.runtime_sim.bench as B
    from edgeintent.runtime_sim.host import HostRecord

    fast = HostRecord("fake fast", "", 3000.0, "AVX-512", "x86_64", calib_ms=4.0, calib_runs=20, bandwidth_gbs=20.0)
    slow = HostRecord("fake slow", "", 2000.0, "AVX2", "x86_64", calib_ms=6.8, calib_runs=20, bandwidth_gbs=10.0)
    reports = {}
    for rec in (fast, slow):
        monkeypatch.setattr(B, "host_record", lambda rec=rec: rec)
        reports[rec.cpu] = run_bench(bundle, BenchConfig(device="cpu-arm-low", targets=("onnx",), runs=20, warmup=2))
    for name, rec in (("fake fast", fast), ("fake slow", slow)):
        rep = reports[name]
        assert rep["host"]["cpu"] == name and rep["projection"]["host"]["simd"] == rec.simd
        assert rep["projection"]["speed"] == pytest.approx(rec.calib_ms / D.get_device("cpu-arm-low").calib_ms)
        row = next(r for r in rep["rows"] if r["target"] == "onnx")
        assert row["projected"]["p50_ms"] == pytest.approx(row["measured"]["cpu"]["min_ms"] * rep["projection"]["factor"])
    # the same measured time projects 1.7x faster on the host whose calibration block was 1.7x slower
    f_fast, f_slow = reports["fake fast"]["projection"]["factor"], reports["fake slow"]["projection"]["factor"]
    assert f_fast / f_slow == pytest.approx(6.8 / 4.0)
