from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgeintent.cli import main
from edgeintent.toolkit.data.writer import write_events

from .helpers import random_log

HEADER = "user_id,ts_ms,stream,action,item_id,category_id,price\n"


def _bad_files(tmp_path):
    files = {}
    files["missing_column.csv"] = ("user_id,ts_ms,stream,action,item_id,price\n1,5,cloud,view,1,1.0\n", "missing column 'category_id'")
    files["nan_ts.csv"] = (HEADER + "1,5,cloud,view,1,1,1.0\n1,nan,cloud,view,1,1,1.0\n", "line 3: column 'ts_ms'")
    files["unknown_stream.csv"] = (HEADER + "1,5,cloud,view,1,1,1.0\n1,6,swipes,view,1,1,1.0\n", "unknown stream 'swipes'")
    files["empty.csv"] = ("", "empty file")
    out = {}
    for name, (text, expect) in files.items():
        p = tmp_path / name
        p.write_text(text)
        out[name] = (p, expect)
    good = write_events(random_log(0), tmp_path / "good.parquet")
    trunc = tmp_path / "truncated.parquet"
    trunc.write_bytes(good.read_bytes()[:-200])
    out["truncated.parquet"] = (trunc, "not a readable Parquet file")
    return out


@pytest.mark.parametrize("name", ["missing_column.csv", "nan_ts.csv", "unknown_stream.csv", "empty.csv", "truncated.parquet"])
def test_bad_input_exits_2_with_one_line(tmp_path, name):
    path, expect = _bad_files(tmp_path)[name]
    for args in (["data", "inspect", str(path)], ["features", "fit", str(path), "--out", str(tmp_path / "s.json")]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, res.stderr
        assert str(path) in lines[0] and expect in lines[0], lines[0]
        assert "Traceback" not in res.output
    assert not (tmp_path / "s.json").exists()


def test_real_process_exit_code_and_no_traceback(tmp_path):
    path, _ = _bad_files(tmp_path)["nan_ts.csv"]
    proc = subprocess.run([sys.executable, "-m", "edgeintent.cli", "data", "inspect", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_unknown_source_and_bad_sim_spec():
    for spec, expect in (("foo:bar", "unknown data source"), ("sim:abc", "must be integers"), ("sim:0", "positive"),
                         ("taobao:/nonexistent", "does not exist"),
                         ("sim:a:b:c", "'sim:a:b:c'")):  # printed as typed (rich would make ":a:" an emoji)
        res = CliRunner().invoke(main, ["data", "inspect", spec])
        assert res.exit_code == 2 and expect in res.stderr, res.stderr


def test_features_fit_and_build(tmp_path):
    events = write_events(random_log(1), tmp_path / "e.csv")
    spec = tmp_path / "spec.json"
    res = CliRunner().invoke(main, ["features", "fit", str(events), "--out", str(spec), "--json",
                                    "--max-len", "gesture=7,click=3,cloud=4"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["streams"]["gesture"]["features"] == 14 and out["streams"]["gesture"]["max_len"] == 7
    res = CliRunner().invoke(main, ["features", "build", str(events), "--spec", str(spec),
                                    "--out", str(tmp_path / "s.npz"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["shapes"]["gesture"][1:] == [7, 14] and out["shapes"]["cloud"][1:] == [4, 6]


def test_bad_option_values_exit_2(tmp_path):
    events = write_events(random_log(1), tmp_path / "e.parquet")
    res = CliRunner().invoke(main, ["features", "fit", str(events), "--out", str(tmp_path / "s.json"),
                                    "--max-len", "gesture=x"])
    assert res.exit_code == 2 and "--max-len" in res.stderr
    res = CliRunner().invoke(main, ["features", "fit", str(events), "--out", str(tmp_path / "newdir" / "s.json")])
    assert res.exit_code == 0 and (tmp_path / "newdir" / "s.json").is_file()  # the directory is created
    res = CliRunner().invoke(main, ["features", "fit", str(events), "--out", str(events / "s.json")])
    assert res.exit_code == 2 and "is not a directory" in res.stderr and "\n" not in res.stderr.strip()
    res = CliRunner().invoke(main, ["features", "build", str(events), "--spec", str(tmp_path / "none.json"),
                                    "--out", str(tmp_path / "s.npz")])
    assert res.exit_code == 2 and "no such FeatureSpec" in res.stderr


@pytest.mark.parametrize("ext", [".parquet", ".csv", ".jsonl"])
def test_simulate_is_deterministic_and_round_trips(tmp_path, ext):
    from edgeintent.toolkit.data.simulator import SimConfig, simulate
    from edgeintent.toolkit.data.sources import load_source, sidecar_path

    paths = []
    for i in range(2):
        out = tmp_path / f"run{i}" / f"events{ext}"
        out.parent.mkdir()
        res = CliRunner().invoke(main, ["data", "simulate", "--users", "150", "--seed", "3", "--out", str(out), "--json"])
        assert res.exit_code == 0, res.output
        paths.append(out)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert sidecar_path(paths[0]).read_bytes() == sidecar_path(paths[1]).read_bytes()
    ds = load_source(str(paths[0]))
    sim = simulate(SimConfig(users=150, seed=3))
    for s in ("gesture", "click", "cloud"):
        got, want = ds.events.stream(s), sim.events.stream(s)
        assert got.num_rows == want.num_rows > 0
        for name in ("user_id", "ts_ms"):
            assert got.column(name).to_pylist() == want.column(name).to_pylist()
    assert ds.decisions.num_rows == sim.decisions.num_rows


def test_simulate_failure_leaves_no_file(tmp_path):
    res = CliRunner().invoke(main, ["data", "simulate", "--users", "10", "--out", str(tmp_path / "x.txt")])
    assert res.exit_code == 2 and "unsupported file type" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_demo_runs_every_stage(tmp_path):
    res = CliRunner().invoke(main, ["demo", "--users", "300", "--epochs", "1", "--out", str(tmp_path / "demo"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["featurize"]["samples"] == out["simulate"]["decisions"] > 0
    assert set(out["featurize"]["shapes"]) == {"gesture", "click", "cloud"}
    assert 0.0 < out["featurize"]["label_rates"]["buy_rt"] < 0.2
    for name in ("dipn", "gbdt"):
        assert 0.0 <= out["train"][name]["valid"]["buy_rt"]["auc"] <= 1.0
        assert out["evaluate"][name]["fresh"]["buy_rt"]["n"] > 0  # scored on a population it never saw
        assert (tmp_path / "demo" / name / "manifest.json").exists()
    assert [r["task"] for r in out["funnel"]["funnel"]["steps"]] == ["engage_rt", "buy_rt"]  # aitm, one line per step
    for name in ("events.parquet", "feature_spec.json", "samples.npz", "demo.json", "decisions.parquet", "policy.png",
                 "iidn/decision.json", "aitm/manifest.json"):  # fmt: skip
        assert (tmp_path / "demo" / name).exists()
    bench = out["bench"]  # stage 7: bench
    assert bench["device"]["name"] == "cpu-arm" and bench["runs"] >= 200
    assert {r["target"] for r in bench["rows"] if r["status"]["benched"] is True} >= {"torch", "onnx"}
    rows = out["decide"]["policy_eval"]["rows"]
    assert {r["policy"] for r in rows} >= {"give-all", "mckp", "oracle"} and all(r["spend"] <= r["budget"] for r in rows)
    assert out["rank"]["requests"] > 0 and 0.0 <= out["rank"]["fusion"]["ndcg@10"] <= 1.0  # the rank line
    assert (tmp_path / "demo" / "rank" / "manifest.json").exists()
    assert out["decide"]["allocate"]["spend"] <= out["decide"]["allocate"]["budget"]


def _label_rates(stdout: str) -> dict[str, str]:
    """label → the rate cell of `data inspect`'s label table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 4 and cells[0] in ("buy_rt", "buy_long", "stay"):
            rows[cells[0]] = cells[2]
    return rows


def test_inspect_tells_unobserved_labels_from_a_missing_cloud_stream(tmp_path):
    # one cloud event: the cloud stream exists, but no horizon ends inside the data
    one = tmp_path / "one.csv"
    one.write_text(HEADER + "1,5,cloud,view,1,1,1.0\n")
    res = CliRunner().invoke(main, ["data", "inspect", str(one)])
    assert res.exit_code == 0, res.output
    assert _label_rates(res.stdout) == {"buy_rt": "n/a (unobserved)", "buy_long": "n/a (unobserved)",
                                        "stay": "n/a (unobserved)"}, res.stdout
    assert "no cloud stream" not in res.stdout

    # no cloud stream, decision points of its own: purchases are undefined, stay is observed
    import pyarrow as pa
    import pyarrow.parquet as pq

    from edgeintent.toolkit.data.schema import EventLog
    from edgeintent.toolkit.data.sources import sidecar_path

    from .helpers import random_columns

    cols = random_columns(2)
    del cols["cloud"]
    events = write_events(EventLog.from_columns(cols), tmp_path / "touch.parquet")
    users = [1, 2, 3]
    pq.write_table(pa.table({"user_id": pa.array(users, pa.int64()), "t_ms": pa.array([3_600_000] * 3, pa.int64())}),
                   sidecar_path(events))
    res = CliRunner().invoke(main, ["data", "inspect", str(events)])
    assert res.exit_code == 0, res.output
    rates = _label_rates(res.stdout)
    assert rates["buy_rt"] == rates["buy_long"] == "n/a (no cloud stream)", res.stdout
    assert rates["stay"].endswith("%") and not rates["stay"].startswith("n/a"), res.stdout
