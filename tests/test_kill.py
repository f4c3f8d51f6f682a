"""Nothing lost: commands killed with SIGKILL at random points leave no partial bundle or output at
their target path, and every bundle still verifies (an interrupted export is finished by the next
open). The interrupted commit is also forced deterministically, between two of its renames."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgeintent.exporters import exported_artifacts, load_runner
from edgeintent.toolkit import bundle as B
from edgeintent.toolkit.bundle import add_files, load_bundle, load_model, verify_bundle
from edgeintent.toolkit.golden import golden_samples
from edgeintent.toolkit.models.exportable import feeds

ROOT = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("EDGEINTENT_KILLS", "4"))  # the slow set: EDGEINTENT_KILLS=40


def _kill_at_random(cmd: list[str], seconds: float, rng: random.Random) -> int | None:
    """Start ``cmd``, SIGKILL it after a random delay in [0, seconds); its exit code if it finished first."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + rng.uniform(0, seconds)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc.returncode
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return None


def _runs(path: Path) -> None:
    """Every exported artifact of the bundle loads and runs on its golden set."""
    bundle = load_bundle(path)
    metas = exported_artifacts(bundle)
    assert metas
    f = feeds(load_model(bundle), golden_samples(bundle.golden))
    for meta in metas:
        out = load_runner(bundle, meta).run(f)
        assert all(np.isfinite(v).all() for v in out.values())


def test_export_killed_at_random_points(trained, tmp_path):
    path = tmp_path / "b"
    shutil.copytree(trained("dipn-tiny"), path)
    t0 = time.monotonic()  # the first export: a whole run, which times the kill window too
    first = subprocess.run([sys.executable, "-m", "edgeintent.cli", "export", str(path), "--target", "onnx"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    took = time.monotonic() - t0
    assert first.returncode == 0, first.stderr
    rng = random.Random(0)
    finished = 0
    for _ in range(KILLS):
        code = _kill_at_random([sys.executable, "-m", "edgeintent.cli", "export", str(path), "--target", "onnx"], took * 1.2, rng)
        finished += code == 0
        verify_bundle(path)  # finishes an interrupted commit, or the bundle is as it was
        _runs(path)
    assert finished < KILLS  # most runs were killed, not finished
    leftovers = [p for p in path.rglob("*") if B._is_staging(p.name) or p.name == B.JOURNAL]
    res = subprocess.run([sys.executable, "-m", "edgeintent.cli", "export", str(path), "--target", "onnx"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert not [p for p in path.rglob("*") if B._is_staging(p.name) or p.name == B.JOURNAL], leftovers  # the next writer clears them


def test_train_killed_at_random_points_leaves_no_bundle_or_a_whole_one(tmp_path):
    rng = random.Random(1)
    cmd = [sys.executable, "-m", "edgeintent.cli", "train", "--model", "dipn-tiny", "--data", "sim:120:1", "--epochs", "1",
           "--overwrite", "--out"]  # fmt: skip
    t0 = time.monotonic()
    subprocess.run([*cmd, str(tmp_path / "timed")], cwd=ROOT, check=True, capture_output=True, timeout=300)
    took = time.monotonic() - t0
    for i in range(max(KILLS // 2, 2)):
        out = tmp_path / f"t{i}"
        _kill_at_random([*cmd, str(out)], took * 1.2, rng)
        if out.exists():
            verify_bundle(out)
            load_bundle(out)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgeintent.cli", *args]


def _check_npz(out: Path, bundle: Path | None) -> None:
    with np.load(out, allow_pickle=False) as z:
        assert len(z.files) > 0


def _check_parquet(out: Path, bundle: Path | None) -> None:
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows > 0
    verify_bundle(bundle)  # allocate also adds decision.json to the bundle


def _check_quantized(out: Path, bundle: Path | None) -> None:
    _runs(bundle)


@pytest.mark.parametrize("command", ["features build", "allocate", "quantize"])
def test_outputs_of_killed_commands_are_whole_or_absent(trained, tmp_path, command):
    """Each output is absent or whole after a kill, and the bundle it writes into still verifies."""
    rng = random.Random(command)
    bundle = None
    if command == "features build":
        spec = tmp_path / "spec.json"
        subprocess.run(_cli("features", "fit", "sim:120:1", "--out", str(spec)), cwd=ROOT, check=True, capture_output=True, timeout=300)
        make, check = (lambda out: _cli("features", "build", "sim:120:1", "--spec", str(spec), "--out", str(out))), _check_npz
        suffix = ".npz"
    elif command == "allocate":
        bundle = tmp_path / "iidn"
        shutil.copytree(trained("iidn"), bundle)
        make = lambda out: _cli("allocate", "--bundle", str(bundle), "--data", "sim:120:9", "--budget", "500", "--out", str(out))  # noqa: E731
        check, suffix = _check_parquet, ".parquet"
    else:
        bundle = tmp_path / "dipn"
        shutil.copytree(trained("dipn-tiny"), bundle)
        subprocess.run(_cli("export", str(bundle), "--target", "onnx"), cwd=ROOT, check=True, capture_output=True, timeout=300)
        make = lambda out: _cli("quantize", str(bundle), "--target", "onnx", "--mode", "fp16", "--runs", "10")  # noqa: E731
        check, suffix = _check_quantized, ""
    t0 = time.monotonic()
    subprocess.run(make(tmp_path / f"timed{suffix}"), cwd=ROOT, check=True, capture_output=True, timeout=300)
    took = time.monotonic() - t0
    for i in range(max(KILLS // 2, 2)):
        out = tmp_path / f"out{i}{suffix}"
        _kill_at_random(make(out), took * 1.2, rng)
        if bundle is not None:
            verify_bundle(bundle)
        if suffix == "" or out.exists():
            check(out, bundle)


def test_a_commit_interrupted_between_renames_is_finished_by_the_next_open(trained, tmp_path, monkeypatch):
    """add_files dies after moving the first of its files in (its journal written): the bundle does not
    verify as it stands, and the next open finishes the commit."""
    path = tmp_path / "b"
    shutil.copytree(trained("dipn-tiny"), path)
    files = {"exports/x/a.bin": b"a" * 10, "exports/x/b.bin": b"b" * 20, "exports/y/c.bin": b"c" * 30}
    real_replace = os.replace
    calls = {"n": 0}

    def dying_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:  # 1: the journal; 2: the first file; 3: dies before the second
            raise SystemExit("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(B.os, "replace", dying_replace)
    with pytest.raises(SystemExit):
        add_files(path, files)
    monkeypatch.setattr(B.os, "replace", real_replace)
    assert (path / B.JOURNAL).exists() and (path / "exports/x/a.bin").exists() and not (path / "exports/x/b.bin").exists()
    manifest = verify_bundle(path)  # rolls forward
    assert not (path / B.JOURNAL).exists()
    for rel, data in files.items():
        assert (path / rel).read_bytes() == data and rel in manifest["files"]
    load_bundle(path)


def test_a_commit_killed_before_its_journal_leaves_the_bundle_as_it_was(trained, tmp_path, monkeypatch):
    path = tmp_path / "b"
    shutil.copytree(trained("dipn-tiny"), path)
    before = verify_bundle(path)

    def dying_replace(src, dst):
        raise SystemExit("killed")

    monkeypatch.setattr(B.os, "replace", dying_replace)
    with pytest.raises(SystemExit):
        add_files(path, {"exports/x/a.bin": b"a"})
    monkeypatch.undo()
    assert verify_bundle(path) == before and not (path / "exports/x/a.bin").exists()


def test_a_planted_journal_cannot_move_files_out_of_place(trained, tmp_path):
    import json

    from edgeintent.errors import BundleError

    path = tmp_path / "b"
    shutil.copytree(trained("dipn-tiny"), path)
    (path / B.JOURNAL).write_text(json.dumps({"manifest": {}, "moves": [["../../etc/passwd", "config.json"]], "delete": []}))
    with pytest.raises(BundleError, match="malformed"):
        verify_bundle(path)


def test_two_concurrent_exports_into_one_bundle_both_land(trained, tmp_path):
    path = tmp_path / "b"
    shutil.copytree(trained("dipn-tiny"), path)
    cmds = [[sys.executable, "-m", "edgeintent.cli", "export", str(path), "--target", t] for t in ("onnx", "mnn")]
    procs = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    verify_bundle(path)
    assert {m.target for m in exported_artifacts(load_bundle(path))} == {"onnx", "mnn"}
    _runs(path)
