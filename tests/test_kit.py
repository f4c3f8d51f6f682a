"""The phone kit: the C featurizer gives Python's ids bit for bit, and parity catches every injected bug."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeintent.cli import main
from edgeintent.exporters import export_bundle, get_target, install_artifact
from edgeintent.kit import C_DIR, FUZZER, RUNNER
from edgeintent.kit.build import SANITIZE, compile_program, compiler, run
from edgeintent.kit.spec import read_output, spec_bytes
from edgeintent.toolkit.bundle import golden_bytes, load_bundle, load_model, write_bundle
from edgeintent.toolkit.golden_events import GOLDEN_EVENTS, load_golden_events, with_expected

#: a half-hour UTC offset (India): hour ids move at half past every UTC hour
OFFSET_MS = 19_800_000

#: bugs a hand port makes, as edits of kit.c: (what the code says, what the buggy port says)
BUGS = {
    "bucket_lt": ("if (f->edges[mid] <= v)", "if (f->edges[mid] < v)"),
    "hash_seed": ("fmix64((uint64_t)value + f->seed)", "fmix64((uint64_t)value + f->seed + 1u)"),
    "utc_ignored": ("int64_t local = ts + k->utc_offset_ms;", "int64_t local = ts; (void)k;"),
    "event_at_t_included": ("st->ring_ts[physical(st, st->count - 1u - skip)] >= t_ms",
                            "st->ring_ts[physical(st, st->count - 1u - skip)] > t_ms"),
    "vocab_shifted": ("key.id = (int32_t)i + 2;", "key.id = (int32_t)i + 1;"),
}  # fmt: skip
#: what the breach message must name for each bug (stream and feature)
NAMED = {
    "bucket_lt": None,  # several streams and features sit on edges
    "hash_seed": ("stream cloud", "feature 'item'"),
    "utc_ignored": ("stream cloud", "feature 'hour'"),
    "event_at_t_included": (None, "length"),
    "vocab_shifted": (None, "(column 0)"),
}


def _parity(path: Path, *args: str):
    res = CliRunner().invoke(main, ["parity", str(path), "--json", *args])
    return res, (json.loads(res.stdout) if res.stdout.strip().startswith("{") else None)


@pytest.fixture(scope="module")
def kit_bundles(brief_bundles, tmp_path_factory) -> dict[str, Path]:
    """dipn and iidn (sim) with the kit exported (copy before changing)."""
    root = tmp_path_factory.mktemp("kit")
    out = {}
    for name, raw in brief_bundles.items():
        out[name] = root / name
        shutil.copytree(raw, out[name])
        export_bundle(out[name], "kit")
    return out


@pytest.fixture(scope="module")
def offset_bundle(kit_bundles, tmp_path_factory) -> Path:
    """The dipn bundle with a FeatureSpec in UTC+5:30 (its raw golden ids recomputed) and the kit exported."""
    import dataclasses

    src = load_bundle(kit_bundles["dipn"])
    spec = dataclasses.replace(src.spec, utc_offset_ms=OFFSET_MS)
    raw = with_expected(load_golden_events(src), spec)
    path = tmp_path_factory.mktemp("offset") / "dipn"
    write_bundle(path, src.config, src.weights, spec, src.golden, src.metrics, extra_files={GOLDEN_EVENTS: golden_bytes(raw)})
    export_bundle(path, "kit")
    return path


@pytest.mark.parametrize("name", ["dipn", "iidn"])
def test_kit_parity_is_bit_identical_on_the_raw_golden_events(kit_bundles, tmp_path, name):
    junit = tmp_path / "kit.xml"
    res, report = _parity(kit_bundles[name], "--target", "kit", "--junit", str(junit))
    assert res.exit_code == 0, res.output[-2000:]
    bundle = load_bundle(kit_bundles[name])
    raw = load_golden_events(bundle)
    rows = {r["output"]: r for r in report["results"]}
    assert set(rows) == {f"ids_{s}" for s in bundle.spec.streams}
    for r in rows.values():
        assert r["passed"] and r["target"] == "kit" and r["runtime"].startswith("C99 kit")
        m = r["metrics"]
        assert m["rows"] == len(raw["case"]) > 24 and m["rows_differ"] == m["ids_differ"] == m["ages_differ"] == 0
    assert junit.read_text().count("<testcase") == len(rows)
    # the export holds the library, the runner, the binary spec and the cases; the spec is the bundle's
    kit_dir = kit_bundles[name] / "exports" / "kit" / "kit"
    assert sorted(p.name for p in kit_dir.iterdir()) == ["cases.bin", "kit.c", "kit.h", "kit_conform.c", "kit_fuzz.c", "spec.bin"]
    assert (kit_dir / "spec.bin").read_bytes() == spec_bytes(bundle.spec)


def test_raw_golden_events_hold_the_edge_cases(kit_bundles):
    bundle = load_bundle(kit_bundles["dipn"])
    raw, spec = load_golden_events(bundle), bundle.spec
    kinds = set(raw["case"].tolist())
    for kind in ("recorded", "empty", "length1", "event_at_t", "over_max_len", "long_gaps", "same_ts",
                 "unseen_categories", "cells_and_sectors", "extremes_early", "extremes_late", "hour_boundary"):  # fmt: skip
        assert kind in kinds, kind
    assert any(k.startswith("bucket_edges_gesture_") for k in kinds) and "bucket_edges_cloud_price" in kinds
    case = {k: i for i, k in enumerate(raw["case"])}
    for s in spec.streams:
        ts, of = raw[f"ev_{s}_ts_ms"], raw[f"ev_{s}_case"]
        # an event exactly at t is pushed and must be left out; more than max_len events are pushed
        at_t = case["event_at_t"]
        assert (ts[of == at_t] == raw["t_ms"][at_t]).sum() == 2 and raw[f"len_{s}"][at_t] == 2
        assert (of == case["over_max_len"]).sum() > spec.max_len[s] == raw[f"len_{s}"][case["over_max_len"]]
        assert raw[f"len_{s}"][case["empty"]] == 0
        # unseen categories get the unknown id 1
        assert (raw[f"x_{s}"][case["unseen_categories"], :2, 0] == 1).all()
    # values exactly on the price edges
    price = next(f for f in spec.features["cloud"] if f.name == "price")
    pushed = raw["ev_cloud_price"][np.isin(raw["ev_cloud_case"], np.flatnonzero(raw["case"] == "bucket_edges_cloud_price"))]
    assert set(price.edges) <= set(pushed.tolist())


@pytest.mark.parametrize("bug", list(BUGS))
def test_every_injected_featurizer_bug_fails_parity(offset_bundle, tmp_path, bug):
    path = tmp_path / "b"
    shutil.copytree(offset_bundle, path)
    res, report = _parity(path, "--target", "kit")
    assert res.exit_code == 0, res.output[-1500:]  # the bundle passes before the bug
    good, bad = BUGS[bug]
    bundle = load_bundle(path)

    def broken(out: Path) -> dict:
        extra = get_target("kit").export(None, bundle.spec, None, out, "fp32", bundle=bundle)
        src = (out / "kit.c").read_text()
        assert src.count(good) == 1, good
        (out / "kit.c").write_text(src.replace(good, bad))
        return extra

    install_artifact(bundle, "kit", "fp32", load_model(bundle), build=broken)
    res, report = _parity(path, "--target", "kit")
    assert res.exit_code == 1, res.output[-1500:]
    failed = [r for r in report["results"] if not r["passed"]]
    assert failed and all(r["target"] == "kit" for r in failed)
    reasons = " | ".join(r["reasons"][0] for r in failed)
    assert "row " in reasons and "(case " in reasons, reasons
    stream, what = NAMED[bug] or (None, "feature '")
    if stream:
        assert [r["output"] for r in failed] == [f"ids_{stream.split()[1]}"], reasons
    assert what in reasons, reasons
    # the text report names stream, row and feature in one line per failing stream
    res = CliRunner().invoke(main, ["parity", str(path), "--target", "kit"])
    assert res.exit_code == 1 and "FAIL kit fp32 ids_" in res.output and "Traceback" not in res.output


def test_featurizer_dump_of_an_app_port_is_checked_the_same_way(kit_bundles, tmp_path):
    kit_dir = kit_bundles["dipn"] / "exports" / "kit" / "kit"
    exe = compile_program(kit_dir, RUNNER, tmp_path / "port")
    dump = tmp_path / "dump.bin"
    run(exe, [str(kit_dir / "spec.bin"), str(kit_dir / "cases.bin"), str(dump)])
    res, report = _parity(kit_bundles["dipn"], "--featurizer-dump", str(dump))
    assert res.exit_code == 0 and report["passed"] and report["results"][0]["target"] == "featurizer-dump", res.output[-1500:]
    # one wrong id in the click stream of row 5: exit 1, naming the stream, row and feature
    data = bytearray(dump.read_bytes())
    got = read_output(bytes(data), "dump")
    spec = load_bundle(kit_bundles["dipn"]).spec
    header = 16 + 9 * len(got)
    record = sum(8 + spec.max_len[s] * len(spec.features[s]) * 4 + spec.max_len[s] * 8 for s in got)
    offset = header + 5 * record + 8 + spec.max_len["gesture"] * 14 * 4 + spec.max_len["gesture"] * 8 + 8 + 4 * 1
    data[offset] ^= 1  # click, row 5, event 0, column 1 (page)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    res, report = _parity(kit_bundles["dipn"], "--featurizer-dump", str(bad))
    assert res.exit_code == 1
    failed = [r for r in report["results"] if not r["passed"]]
    assert [r["output"] for r in failed] == ["ids_click"]
    assert failed[0]["reasons"][0].startswith("stream click, row 5 (case ") and "feature 'page' (column 1), event 0" in failed[0]["reasons"][0]
    # a truncated dump is a one-line usage error
    bad.write_bytes(bytes(data[:-7]))
    res = CliRunner().invoke(main, ["parity", str(kit_bundles["dipn"]), "--featurizer-dump", str(bad)])
    assert res.exit_code == 2 and "not a featurizer dump" in res.output and "Traceback" not in res.output


def test_a_malformed_spec_is_an_error_code_and_a_message(kit_bundles, tmp_path):
    kit_dir = kit_bundles["dipn"] / "exports" / "kit" / "kit"
    exe = compile_program(kit_dir, RUNNER, tmp_path / "runner")
    spec = (kit_dir / "spec.bin").read_bytes()
    cases = [(spec[:100], "spec truncated or padded"), (b"EIKX" + spec[4:], "bad magic"),
             (spec[:-1] + bytes([spec[-1] ^ 1]), "checksum mismatch"), (spec[:10], "spec truncated")]  # fmt: skip
    for blob, message in cases:
        (tmp_path / "spec.bin").write_bytes(blob)
        proc = subprocess.run([str(exe), str(tmp_path / "spec.bin"), str(kit_dir / "cases.bin"), str(tmp_path / "o")],
                              capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_fuzz_under_address_and_undefined_behaviour_sanitizers(kit_bundles, tmp_path):
    kit_dir = kit_bundles["dipn"] / "exports" / "kit" / "kit"
    exe = compile_program(C_DIR, FUZZER, tmp_path / "fuzz", sanitize=True)
    proc = run(exe, [str(kit_dir / "spec.bin"), "10000", "1000", "7"], timeout=300)
    summary = json.loads(proc.stdout)
    assert summary["sequences"] == 10000 and summary["specs"] == 1000 and summary["violations"] == 0, summary
    assert summary["events"] > 500_000 and summary["windows"] > 50_000
    assert summary["specs_rejected"] > 900  # most corruptions are caught; the rest load and survive a sequence
    assert "ERROR" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("objective", ["purchases", "incremental", "value"])
def test_the_c_decision_rule_is_the_python_rule(tmp_path, objective):
    from edgeintent.decide.rule import DecisionRule, decide
    from edgeintent.kit.native import KitLibrary

    lib = KitLibrary(tmp_path)
    rng = np.random.default_rng(3)
    for gamma in (1.0, 0.6):
        rule = DecisionRule(lam=0.013, gamma=gamma, amounts=(0.0, 2.0, 5.0, 10.0), objective=objective, order_value=30.0)
        p = rng.random((2000, 4))
        p[:200] = p[:200, :1]  # ties: every amount equally good
        p[200:300, 2] = p[200:300, 1] + rule.lam * 3.0  # a tie between amounts 1 and 2 after the price
        stay = rng.random(2000)
        stay[:50] = gamma  # exactly at gamma: no coupon
        want = [decide(rule, list(p[i]), float(stay[i])) for i in range(len(p))]
        got = [lib.decide(rule, p[i], float(stay[i])) for i in range(len(p))]
        assert got == want
        assert len(set(want)) > 1


@pytest.fixture(scope="session")
def cross() -> None:
    """The cpu-arm environment with the aarch64 cross compiler (``edgeintent devices setup cpu-arm`` when
    missing, as tests/test_emulation.py does); skips only when it cannot be built here (no root, no network)."""
    from edgeintent.errors import EmulationError
    from edgeintent.runtimes import emulation

    if os.environ.get("EDGEINTENT_ARM_TESTS") == "0":
        pytest.skip("EDGEINTENT_ARM_TESTS=0")
    try:
        emulation.environment()  # parity --device cpu-arm checks the environment is built
        built = shutil.which(emulation.CROSS_CC) is not None
    except EmulationError:
        built = False
    if not built:
        try:
            emulation.setup()
        except EmulationError as err:
            if err.reason in ("root", "network"):
                pytest.skip(f"the aarch64 cross compiler cannot be installed here: {err}")
            raise


def test_kit_parity_on_aarch64_under_qemu(cross, kit_bundles, offset_bundle):
    for path in (kit_bundles["iidn"], offset_bundle):
        res, report = _parity(path, "--target", "kit", "--device", "cpu-arm")
        assert res.exit_code == 0, res.output[-1500:]
        assert {r["arch"] for r in report["results"]} == {"aarch64"} and all(r["passed"] for r in report["results"])
        assert "qemu-aarch64-static -cpu cortex-a76" in report["results"][0]["runtime"]


def test_strict_c99_build_and_a_missing_compiler_is_one_line(tmp_path, monkeypatch):
    compile_program(C_DIR, RUNNER, tmp_path / "runner")  # -std=c99 -Wall -Wextra -Werror -pedantic
    monkeypatch.setenv("CC", "no-such-cc")
    with pytest.raises(Exception, match="needs a C compiler; 'no-such-cc' is not on PATH"):
        compiler("host")


@pytest.mark.realdata
@pytest.mark.parametrize("source, name", [("taobao", "dipn"), ("hmog", "iidn")])  # the featurizer is the spec's, not the model's
def test_kit_parity_on_real_data(cross, trained, request, tmp_path, source, name):
    from edgeintent.toolkit.training.trainer import TrainConfig

    where = request.getfixturevalue("taobao_csv" if source == "taobao" else "hmog_dir")
    path = tmp_path / name
    shutil.copytree(trained(name, TrainConfig(epochs=1, batch_size=256, patience=1, golden_rows=64), source=f"{source}:{where}"), path)
    export_bundle(path, "kit")
    res, report = _parity(path, "--target", "kit")
    assert res.exit_code == 0, res.output[-1500:]
    spec = load_bundle(path).spec
    assert [r["output"] for r in report["results"]] == [f"ids_{s}" for s in spec.streams]
    assert all(r["metrics"]["rows_differ"] == 0 and r["metrics"]["rows"] > 64 for r in report["results"])
    if source == "taobao":
        assert spec.utc_offset_ms == 8 * 3_600_000  # the hour feature is checked in China time
    res, report = _parity(path, "--target", "kit", "--device", "cpu-arm")
    assert res.exit_code == 0 and {r["arch"] for r in report["results"]} == {"aarch64"}, res.output[-1500:]


def test_bench_request_featurizes_the_request_as_python_does(prepared_source, tmp_path):
    from edgeintent.kit.bench import bench_request
    from edgeintent.toolkit.features.request import pick_request

    prep = prepared_source()
    req = pick_request(prep.events, prep.samples, prep.spec, prep.spec.streams)
    res = bench_request(prep.spec, req.tables, req.t_ms, tmp_path, runs=50)
    assert res["matches_python"] and res["runs"] == 50 and res["events"] == sum(t.num_rows for t in req.tables.values())
    assert 0 < res["min_ms"] <= res["p50_ms"] <= res["p90_ms"] <= res["p99_ms"]


@pytest.mark.parametrize("objective", ["purchases", "incremental", "value"])
def test_parity_checks_the_kits_decision_rule_against_decision_json(kit_bundles, tmp_path, objective):
    from edgeintent.decide.rule import DecisionRule, write_rule

    path = tmp_path / "iidn"
    shutil.copytree(kit_bundles["iidn"], path)
    write_rule(path, DecisionRule(lam=0.021, gamma=0.7, amounts=(0.0, 1.0, 3.0, 5.0), objective=objective, order_value=20.0))
    res, report = _parity(path, "--target", "kit")
    assert res.exit_code == 0, res.output[-1500:]
    row = next(r for r in report["results"] if r["output"] == "decision")
    assert row["passed"] and row["metrics"]["rows"] == 2000 and row["metrics"]["rows_differ"] == 0
    if objective == "value":  # its gains fall with the amount's cost: the vectors hold no exact tie
        return
    # a port whose ties go to the dearer amount: parity exit 1, naming the row and its kind
    bundle = load_bundle(path)

    def broken(out: Path) -> dict:
        extra = get_target("kit").export(None, bundle.spec, None, out, "fp32", bundle=bundle)
        src = (out / "kit.c").read_text()
        assert src.count("if (v > best_v)") == 1
        (out / "kit.c").write_text(src.replace("if (v > best_v)", "if (v >= best_v)"))
        return extra

    install_artifact(bundle, "kit", "fp32", load_model(bundle), build=broken)
    res, report = _parity(path, "--target", "kit")
    assert res.exit_code == 1
    failed = [r for r in report["results"] if not r["passed"]]
    assert [r["output"] for r in failed] == ["decision"]
    assert failed[0]["reasons"][0].startswith("decision, row ") and "tied" in failed[0]["reasons"][0], failed[0]["reasons"]


def test_a_bundle_without_raw_golden_events_exports_the_kit_and_parity_says_why_it_is_unchecked(kit_bundles, tmp_path):
    """Bundles trained before raw golden events were recorded: ``export --target all`` still works (at
    fp16 it means the targets that export fp16), and parity skips the kit, saying why, instead of passing it."""
    src = load_bundle(kit_bundles["dipn"])
    path = tmp_path / "old"
    write_bundle(path, src.config, src.weights, src.spec, src.golden, src.metrics)  # no golden_events.npz
    res = CliRunner().invoke(main, ["export", str(path), "--target", "all", "--precision", "fp16", "--json"])
    assert res.exit_code == 0, res.output[-1500:]
    assert "kit" not in {m["target"] for m in json.loads(res.stdout)}
    res = CliRunner().invoke(main, ["export", str(path), "--target", "kit", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["cases"] == 0, res.output[-1500:]
    res, report = _parity(path, "--target", "onnx,kit")
    assert res.exit_code == 0 and report["passed"], res.output[-1500:]
    assert {r["target"] for r in report["results"]} == {"torch", "onnx"}
    assert [k["target"] for k in report["skipped"]] == ["kit"] and "retrain" in report["skipped"][0]["why"]
    res = CliRunner().invoke(main, ["parity", str(path), "--target", "kit"])  # nothing left to check: not a pass
    assert res.exit_code == 2 and "nothing to check" in res.output and "Traceback" not in res.output
