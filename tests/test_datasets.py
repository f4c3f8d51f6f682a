"""Adapters for the real public data sets (Taobao UserBehavior, HMOG) and the simulator calibration."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from edgeintent.errors import DataError
from edgeintent.toolkit.data.calibration import (
    cloud_action_mix,
    fling_pairing,
    gesture_marginals,
    gesture_shape,
    main,
)
from edgeintent.toolkit.data.hmog import load_hmog
from edgeintent.toolkit.data.taobao import load_taobao
from edgeintent.toolkit.data.schema import EventLog, STREAM_FIELDS

# The HMOG data description: TaskID -> (task, walking), written out independently of the adapter.
PDF_TASKS = {
    **{t: ("reading", False) for t in (1, 7, 13, 19)},
    **{t: ("reading", True) for t in (2, 8, 14, 20)},
    **{t: ("writing", False) for t in (3, 9, 15, 21)},
    **{t: ("writing", True) for t in (4, 10, 16, 22)},
    **{t: ("map", False) for t in (5, 11, 17, 23)},
    **{t: ("map", True) for t in (6, 12, 18, 24)},
}


def _strings(col) -> list[str]:
    return col.cast("string").to_pylist() if hasattr(col.type, "value_type") else col.to_pylist()


# ---------------------------------------------------------------------------------------------
# Taobao
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def taobao(taobao_csv: Path):
    return load_taobao(taobao_csv)


def test_taobao_counts_and_mix(taobao) -> None:
    cloud = taobao.events.stream("cloud")
    assert cloud.num_rows == 64_970
    assert taobao.events.present() == ["cloud"]
    assert np.unique(cloud.column("user_id").to_numpy()).size == 611
    mix = cloud_action_mix(taobao.events)["share"]
    assert set(mix) == {"view", "cart", "fav", "buy"}
    for action, expected in {"view": 0.90, "cart": 0.05, "fav": 0.03, "buy": 0.02}.items():
        assert abs(mix[action] - expected) <= 0.01, (action, mix[action])


def test_taobao_mapping(taobao, taobao_csv: Path) -> None:
    assert taobao.utc_offset_ms == 8 * 3600 * 1000
    assert taobao.decisions is None
    assert any("price" in n for n in taobao.meta["notes"])
    cloud = taobao.events.stream("cloud")
    assert cloud.schema.names == ["user_id", "ts_ms", *STREAM_FIELDS["cloud"]]
    assert pc.all(pc.equal(cloud.column("price"), 0.0)).as_py()
    # sorted by (user_id, ts_ms)
    u, t = cloud.column("user_id").to_numpy(), cloud.column("ts_ms").to_numpy()
    assert np.all((u[1:] > u[:-1]) | ((u[1:] == u[:-1]) & (t[1:] >= t[:-1])))
    # the first line of the file, mapped field by field
    with open(taobao_csv, newline="") as fh:
        first = next(csv.reader(fh))
    uid, item, cat, beh, ts = int(first[0]), int(first[1]), int(first[2]), first[3], int(first[4])
    rows = cloud.filter(pc.and_(pc.equal(cloud.column("user_id"), uid), pc.equal(cloud.column("ts_ms"), ts * 1000)))
    row = next(r for r in rows.to_pylist() if r["item_id"] == item)
    assert row["category_id"] == cat
    assert row["action"] == {"pv": "view", "fav": "fav", "cart": "cart", "buy": "buy"}[beh]


def test_taobao_outside_window_counted(taobao) -> None:
    # 2017-11-25 .. 2017-12-03 China time; the sample has a few stragglers (24), kept and counted
    ts = taobao.events.stream("cloud").column("ts_ms").to_numpy() // 1000
    outside = int(np.count_nonzero((ts < 1511539200) | (ts >= 1512316800)))
    assert outside == taobao.meta["outside_window"] > 0
    assert any(f"{outside} of 64970" in n for n in taobao.meta["notes"])


def test_taobao_folder_equals_file(taobao, taobao_csv: Path) -> None:
    again = load_taobao(taobao_csv.parent)
    assert again.events.stream("cloud").equals(taobao.events.stream("cloud"))


def _corrupt_copy(src: Path, dst: Path, line_no: int, new_line: str) -> Path:
    lines = src.read_text().splitlines(keepends=True)
    lines[line_no - 1] = new_line + "\n"
    dst.write_text("".join(lines))
    return dst


@pytest.mark.parametrize(
    ("bad", "column_hint"),
    [
        ("7,1,2,click,1511544070", "behavior_type"),  # unknown behaviour
        ("7,1,2,pv", "columns"),  # too few columns
        ("7,abc,2,pv,1511544070", "item_id"),  # not an integer
        ("7,1,,pv,1511544070", "category_id"),  # empty cell
        ("7,1,2,pv,-5", "timestamp"),  # negative time
    ],
)
def test_taobao_malformed_line(taobao_csv: Path, tmp_path: Path, bad: str, column_hint: str) -> None:
    path = _corrupt_copy(taobao_csv, tmp_path / "UserBehavior_sample.csv", 40_123, bad)
    with pytest.raises(DataError) as err:
        load_taobao(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert "line 40123" in msg
    assert column_hint in msg


def test_taobao_malformed_line_in_a_later_batch(taobao_csv: Path, tmp_path: Path) -> None:
    """Line numbers count across streaming batches."""
    path = _corrupt_copy(taobao_csv, tmp_path / "ub.csv", 60_001, "7,1,2,click,1511544070")
    with pytest.raises(DataError, match=r"ub\.csv: line 60001: column 'behavior_type' has 'click'"):
        load_taobao(path, block_size=1 << 16)


def test_taobao_small_block_size_same_result(taobao, taobao_csv: Path) -> None:
    """Many small streaming batches give exactly the same log as one big one."""
    small = load_taobao(taobao_csv, block_size=1 << 16)
    assert small.events.stream("cloud").equals(taobao.events.stream("cloud"))


# ---------------------------------------------------------------------------------------------
# HMOG
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hmog(hmog_dir: Path):
    return load_hmog(hmog_dir)


def test_hmog_basic(hmog) -> None:
    assert hmog.meta["subjects"] == [100669, 151985, 171538, 180679, 186676, 201848]
    assert hmog.meta["sessions"] == 144
    g = hmog.events.stream("gesture")
    assert hmog.events.present() == ["gesture"]
    kinds = set(_strings(g.column("kind")))
    assert kinds == {"swipe", "scroll"}
    assert set(_strings(g.column("page"))) == {"app"}
    assert set(g.column("orientation").to_pylist()) <= {0, 1, 3}
    for name in ("x0", "y0", "x1", "y1"):
        v = g.column(name).to_numpy()
        assert np.all((v >= 0) & (v <= 1)), name
    for name in ("duration_ms", "vx", "vy", "pressure", "size"):
        v = g.column(name).to_numpy()
        assert np.all(np.isfinite(v)), name
    assert np.all(g.column("duration_ms").to_numpy() >= 0)
    # user_id = subject * 100 + session; 6 subjects x 24 sessions
    users = np.unique(g.column("user_id").to_numpy())
    assert users.size == 144
    assert set((users // 100).tolist()) == set(hmog.meta["subjects"])
    assert set((users % 100).tolist()) == set(range(1, 25))
    # timestamps are wall-clock ms in April/May 2014
    ts = g.column("ts_ms").to_numpy()
    assert ts.min() > 1_396_000_000_000 and ts.max() < 1_402_000_000_000


def test_hmog_malformed_rows_counted(hmog) -> None:
    bad = hmog.meta["malformed_rows"]
    assert set(bad) == {"Activity", "StrokeEvent", "ScrollEvent"}
    assert sum(bad.values()) > 0
    assert bad["StrokeEvent"] > 0  # the half-written last lines of cut StrokeEvent files
    assert any(f"StrokeEvent {bad['StrokeEvent']}" in n for n in hmog.meta["notes"])
    assert len(hmog.meta["stroke_log_truncated_users"]) > 0


def test_hmog_decisions(hmog) -> None:
    d = hmog.decisions
    assert d.schema.names == ["user_id", "t_ms", "subject", "session", "activity_id", "task", "walking"]
    assert set(d.column("task").to_pylist()) == {"reading", "writing", "map"}
    assert set(d.column("walking").to_pylist()) == {True, False}
    u, t = d.column("user_id").to_numpy(), d.column("t_ms").to_numpy()
    assert np.all((u[1:] > u[:-1]) | ((u[1:] == u[:-1]) & (t[1:] >= t[:-1])))
    assert np.array_equal(u, d.column("subject").to_numpy() * 100 + d.column("session").to_numpy())
    # each decision comes right after a gesture of its user (t = that gesture's ts + 1)
    g = hmog.events.stream("gesture")
    keys = set(zip(g.column("user_id").to_pylist(), g.column("ts_ms").to_pylist()))
    assert all((uu, tt - 1) in keys for uu, tt in zip(u.tolist(), t.tolist()))
    # one decision per 10 gestures of an activity: at most n_gestures / 10 in total
    assert 0.8 * g.num_rows / 10 <= d.num_rows <= g.num_rows / 10


def test_hmog_decision_task_matches_activity_file(hmog, hmog_dir: Path) -> None:
    d = hmog.decisions.to_pylist()
    rng = np.random.default_rng(0)
    for i in rng.choice(len(d), size=25, replace=False):
        row = d[int(i)]
        act = hmog_dir / str(row["subject"]) / f"{row['subject']}_session_{row['session']}" / "Activity.csv"
        with open(act, newline="") as fh:
            match = [r for r in csv.reader(fh) if r and int(r[0]) == row["activity_id"]]
        assert match, row
        task, walking = PDF_TASKS[int(match[0][8])]
        assert row["task"] == task
        assert row["walking"] == walking
        assert walking == (int(match[0][7]) == 2)  # Gesture_scenario agrees


def test_hmog_first_stroke_mapping(hmog, hmog_dir: Path) -> None:
    """A fling from the file, field by field, with the documented units."""
    session = hmog_dir / "100669" / "100669_session_1"
    with open(session / "StrokeEvent.csv", newline="") as fh:
        r = [float(v) for v in next(csv.reader(fh))]
    with open(session / "Activity.csv", newline="") as fh:
        a = [float(v) for v in next(csv.reader(fh))]
    offset = a[3] - a[5]  # Start_time - Relative_Start_time
    g = hmog.events.stream("gesture")
    g = g.filter(pc.equal(g.column("user_id"), 100669 * 100 + 1))
    rows = [x for x in g.to_pylist() if x["kind"] == "swipe"]
    first = rows[0]
    assert abs(first["ts_ms"] - (r[1] + offset)) <= 1
    assert first["duration_ms"] == r[2] - r[1]
    assert first["x0"] == pytest.approx(r[5] / 1080)
    assert first["y0"] == pytest.approx(r[6] / 1920)
    assert first["x1"] == pytest.approx(r[10] / 1080)
    assert first["y1"] == pytest.approx(r[11] / 1920)
    assert first["vx"] == pytest.approx(r[14] / 1080)
    assert first["vy"] == pytest.approx(r[15] / 1920)
    assert first["pressure"] == r[7] and first["size"] == pytest.approx(r[8])
    # Systime is written at the end of the fling, on the same clock
    assert abs(r[0] - (first["ts_ms"] + first["duration_ms"])) < 100


def test_hmog_single_subject_folder(hmog, hmog_dir: Path) -> None:
    one = load_hmog(hmog_dir / "180679")
    assert one.meta["subjects"] == [180679]
    assert one.meta["sessions"] == 24
    g_all = hmog.events.stream("gesture")
    mine = g_all.filter(pc.equal(pc.divide(g_all.column("user_id"), 100), 180679))
    assert one.events.stream("gesture").equals(mine)


def _write_rows(path: Path, rows: list[str]) -> None:
    path.write_text("".join(r + "\n" for r in rows))


def _tiny_hmog(root: Path) -> Path:
    """One subject, one session, hand-made rows including every kind of corruption the loader must skip."""
    s = root / "123456" / "123456_session_3"
    s.mkdir(parents=True)
    aid = 123456033000001
    off = 1_400_000_000_000
    _write_rows(s / "Activity.csv", [f"{aid},123456,3,{off + 1000},{off + 900000},1000,900000,2,2,1"])
    good = f"{off + 2300},2000,2300,{aid},0,540.0,960.0,0.5,0.02,1,1080.0,1920.0,0.4,0.03,1080.0,-1920.0,0"
    _write_rows(
        s / "StrokeEvent.csv",
        [
            good,
            f"{off + 3300},3000,3300,{aid},0,540.0,960.0,0.5,0.02,1,1090.0,1920.0,0.4,0.03,1.0,1.0,0",  # clipped x1
            f"{off + 4300},4000,4300,{aid},0,540.0,960.0,0.5,0.02,1,540.0,960.0,0.4,0.03,1.0,1.0,7",  # orientation 7
            f"{off + 5300},5000,5300,{aid},0,nan,960.0,0.5,0.02,1,540.0,960.0,0.4,0.03,1.0,1.0,0",  # NaN
            f"{off + 6300},6000,6300,{aid},0,54000.0,960.0,0.5,0.02,1,540.0,960.0,0.4,0.03,1.0,1.0,0",  # off-screen
            f"{off + 7300},7000,7300,{aid},0,540.0,960.0",  # truncated line
            good + "," + good,  # two lines merged
            f"{off + 8300},8000,7300,{aid},0,540.0,960.0,0.5,0.02,1,540.0,960.0,0.4,0.03,1.0,1.0,0",  # ends early
            f"{off + 9300},9000,9300,999,0,540.0,960.0,0.5,0.02,1,540.0,960.0,0.4,0.03,1.0,1.0,0",  # no such activity
        ],
    )
    scroll = []
    # trajectory A: 3 rows, portrait, 200 ms, from (108, 192) to (216, 576) px
    for t, (x, y) in zip((10050, 10100, 10200), ((120, 300), (150, 400), (216, 576))):
        scroll.append(f"{off + t},10000,{t},{aid},0,0,108.0,192.0,0.6,0.05,2,{x}.0,{y}.0,0.6,0.05,-1.0,-1.0,0")
    # trajectory B: same ScrollID, later finger-down, landscape: x / 1920, y / 1080; one row with inf
    scroll.append(f"{off + 20100},20000,20100,{aid},0,0,960.0,540.0,0.7,0.04,2,1920.0,1080.0,0.7,0.04,1.0,1.0,1")
    scroll.append(f"{off + 20150},20000,20150,{aid},0,0,960.0,540.0,0.7,0.04,2,inf,1080.0,0.7,0.04,1.0,1.0,1")
    scroll.append("garbage")
    # right width, unparsable number: the whole file is re-read as text and only this row is dropped
    scroll.append(f"{off + 20160},20000,20160,{aid},0,0,960.0,540.0,0.7,0.04,2,1.2.3,1080.0,0.7,0.04,1.0,1.0,1")
    _write_rows(s / "ScrollEvent.csv", scroll)
    return root


def test_hmog_handmade_rows(tmp_path: Path) -> None:
    ds = load_hmog(_tiny_hmog(tmp_path / "hmog"), stride=2)
    assert ds.meta["malformed_rows"] == {"Activity": 0, "StrokeEvent": 7, "ScrollEvent": 3}
    g = ds.events.stream("gesture").to_pylist()
    assert [x["kind"] for x in g] == ["swipe", "swipe", "scroll", "scroll"]
    off = 1_400_000_000_000
    s1, s2, a, b = g
    assert all(x["user_id"] == 12345603 for x in g)
    assert s1["ts_ms"] == off + 2000 and s1["duration_ms"] == 300
    assert (s1["x0"], s1["y0"], s1["x1"], s1["y1"]) == (0.5, 0.5, 1.0, 1.0)
    assert (s1["vx"], s1["vy"]) == (1.0, -1.0)
    assert (s1["pressure"], s1["size"], s1["orientation"], s1["page"]) == (0.5, 0.02, 0, "app")
    assert s2["x1"] == 1.0  # 1090 px clipped
    assert a["ts_ms"] == off + 10000 and a["duration_ms"] == 200
    assert (a["x0"], a["y0"], a["x1"], a["y1"]) == pytest.approx((0.1, 0.1, 0.2, 0.3))
    assert (a["vx"], a["vy"]) == pytest.approx((0.5, 1.0))  # (0.1, 0.2) screens in 0.2 s
    assert (a["pressure"], a["size"]) == (0.6, 0.05)
    assert b["ts_ms"] == off + 20000 and b["orientation"] == 1 and b["duration_ms"] == 100
    assert (b["x0"], b["y0"], b["x1"], b["y1"]) == pytest.approx((0.5, 0.5, 1.0, 1.0))
    assert (b["vx"], b["vy"]) == pytest.approx((5.0, 5.0))
    # stride 2: after the 2nd and the 4th gesture of the activity; TaskID 2 = reading while walking
    d = ds.decisions.to_pylist()
    assert [x["t_ms"] for x in d] == [s2["ts_ms"] + 1, b["ts_ms"] + 1]
    assert all(x["task"] == "reading" and x["walking"] and x["subject"] == 123456 and x["session"] == 3 for x in d)


def test_hmog_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        load_hmog(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no HMOG session folders"):
        load_hmog(tmp_path / "empty")


def test_hmog_survives_file_damage(hmog_dir: Path, tmp_path: Path) -> None:
    """A real session with a line merged, a line cut, and garbage appended still loads; the damage is counted."""
    src = hmog_dir / "100669" / "100669_session_1"
    dst = tmp_path / "h" / "100669" / "100669_session_1"
    shutil.copytree(src, dst)
    dst.chmod(0o755)
    for f in dst.iterdir():
        f.chmod(0o644)
    clean = load_hmog(src.parent.parent / "100669")
    clean_g = clean.events.stream("gesture")
    clean_rows = clean_g.filter(pc.equal(clean_g.column("user_id"), 10066901))
    lines = (dst / "ScrollEvent.csv").read_text().splitlines()
    lines[10] = lines[10] + lines[11]  # merged (37 fields)
    del lines[11]
    lines[20] = lines[20][:30]  # cut
    lines.append("1396226207630,NaN,ab,,,,")
    (dst / "ScrollEvent.csv").write_text("\n".join(lines) + "\n")
    ds = load_hmog(tmp_path / "h")
    assert ds.meta["malformed_rows"]["ScrollEvent"] == 3
    g = ds.events.stream("gesture")
    assert np.all(np.isfinite(g.column("vx").to_numpy()))
    # losing three rows changes at most two trajectories' end points, not the number of gestures
    assert g.num_rows == clean_rows.num_rows


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


def _handmade_log() -> EventLog:
    return EventLog.from_columns(
        {
            "gesture": {
                "user_id": [1, 1, 1],
                "ts_ms": [10, 20, 30],
                "kind": ["swipe", "swipe", "scroll"],
                "x0": [0.0, 0.5, 0.2],
                "y0": [0.0, 0.5, 0.2],
                "x1": [0.3, 0.5, 0.2],
                "y1": [0.4, 0.5, 0.6],
                "duration_ms": [100.0, 1000.0, 0.0],
                "vx": [3.0, 0.0, 0.0],
                "vy": [4.0, 0.0, 2.0],
                "pressure": [1.0, 1.0, 1.0],
                "size": [0.1, 0.1, 0.1],
                "page": ["app"] * 3,
                "orientation": [0, 0, 0],
            },
            "cloud": {
                "user_id": [1, 1, 2, 2],
                "ts_ms": [1, 2, 3, 4],
                "action": ["view", "view", "view", "buy"],
                "item_id": [1, 2, 3, 4],
                "category_id": [1, 1, 1, 1],
                "price": [0.0] * 4,
            },
        }
    )


def test_gesture_marginals_exact() -> None:
    m = gesture_marginals(_handmade_log())
    assert m["n_events"] == 3
    assert m["share"] == {"scroll": pytest.approx(1 / 3), "swipe": pytest.approx(2 / 3)}
    sw = m["kinds"]["swipe"]
    assert sw["count"] == 2
    # durations 100, 1000 -> logs ln 100, ln 1000: mean ln(100*sqrt(10)), population std ln(10)/2
    d = sw["duration_ms"]
    assert d["log_mean"] == pytest.approx(math.log(100) / 2 + math.log(1000) / 2)
    assert d["log_std"] == pytest.approx(math.log(10) / 2)
    assert d["n_positive"] == 2
    assert (d["q10"], d["q50"], d["q90"]) == pytest.approx((190.0, 550.0, 910.0))
    # distances 0.5 and 0: the log statistics see only 0.5, the quantiles see both
    dist = sw["distance"]
    assert dist["log_mean"] == pytest.approx(math.log(0.5)) and dist["log_std"] == 0.0
    assert dist["n_positive"] == 1
    assert (dist["q10"], dist["q50"], dist["q90"]) == pytest.approx((0.05, 0.25, 0.45))
    # speeds sqrt(3^2 + 4^2) = 5 and 0
    sp = sw["speed"]
    assert sp["log_mean"] == pytest.approx(math.log(5)) and sp["n_positive"] == 1
    assert sp["q50"] == pytest.approx(2.5)
    sc = m["kinds"]["scroll"]
    assert sc["count"] == 1 and sc["share"] == pytest.approx(1 / 3)
    assert sc["duration_ms"]["log_mean"] is None and sc["duration_ms"]["n_positive"] == 0
    assert sc["duration_ms"]["q50"] == 0.0
    assert sc["distance"]["log_mean"] == pytest.approx(math.log(0.4))
    assert sc["speed"]["q90"] == pytest.approx(2.0)


def test_gesture_orientation_filter_and_shape_exact() -> None:
    log = _handmade_log()
    assert gesture_marginals(log, orientation=1) == {"n_events": 0, "share": {}, "kinds": {}}
    assert gesture_marginals(log, orientation=0) == gesture_marginals(log)
    shape = gesture_shape(log)
    assert shape["swipe"]["orientation_share"] == {"0": 1.0}
    assert shape["swipe"]["size_log_mean"] == pytest.approx(math.log(0.1))
    assert shape["swipe"]["size_log_std"] == 0.0
    assert shape["swipe"]["log_duration_log_distance_corr"] is None  # one usable gesture only
    assert gesture_shape(log, orientation=3) == {}


def test_cloud_action_mix_and_pairing_exact() -> None:
    log = _handmade_log()
    mix = cloud_action_mix(log)
    assert mix["n_events"] == 4
    assert mix["share"] == {"buy": 0.25, "view": 0.75}
    assert mix["count"] == {"buy": 1, "view": 3}
    # no swipe shares a start with a scroll here
    assert fling_pairing(log) == {"swipes_with_scroll": 0.0, "scrolls_ending_in_swipe": 0.0}
    empty = EventLog({})
    assert gesture_marginals(empty) == {"n_events": 0, "share": {}, "kinds": {}}
    assert cloud_action_mix(empty)["share"] == {}


def test_calibration_on_real_data(hmog_dir: Path, taobao_csv: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cal.json"
    assert main(["--hmog", str(hmog_dir), "--taobao", str(taobao_csv), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    gm = printed["hmog"]["gesture_marginals"]
    swipe, scroll = gm["kinds"]["swipe"], gm["kinds"]["scroll"]
    assert 50 <= swipe["duration_ms"]["q50"] <= 1000
    assert 50 <= scroll["duration_ms"]["q50"] <= 1000
    for k in (swipe, scroll):
        assert k["duration_ms"]["q10"] < k["duration_ms"]["q50"] < k["duration_ms"]["q90"]
        assert 0.01 < k["distance"]["q50"] < 0.6  # screen units
        assert 0.05 < k["speed"]["q50"] < 5  # screens per second
        assert 0.3 < k["duration_ms"]["log_std"] < 2.5
        # the log-normal centre sits near the median
        assert abs(math.exp(k["duration_ms"]["log_mean"]) - k["duration_ms"]["q50"]) < 0.5 * k["duration_ms"]["q50"]
    assert swipe["count"] + scroll["count"] == gm["n_events"]
    share = printed["hmog"]["kind_share_complete_sessions"]
    assert share["swipe"] > gm["share"]["swipe"]  # cut stroke logs lose flings
    assert printed["hmog"]["fling_pairing"]["swipes_with_scroll"] > 0.95
    portrait = printed["hmog"]["gesture_marginals_portrait"]
    assert 0.85 < portrait["n_events"] / gm["n_events"] < 1.0
    shape = printed["hmog"]["gesture_shape"]["swipe"]
    assert shape["orientation_share"]["0"] > 0.85
    assert 0.3 < shape["log_duration_log_distance_corr"] < 0.8
    mix = printed["taobao"]["cloud_action_mix"]["share"]
    assert abs(mix["view"] - 0.90) <= 0.01 and abs(mix["buy"] - 0.02) <= 0.01
    assert sum(mix.values()) == pytest.approx(1.0)
