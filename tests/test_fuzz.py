"""Nothing bad in: malformed event files, decision-point sidecars, FeatureSpec files, bundles and CLI
arguments either load or are refused with one ``EdgeIntentError`` line.

Inputs come from hypothesis with a fixed seed (``derandomize``), so a run is repeatable; their
number scales with ``EDGEINTENT_FUZZ_SCALE`` (1 → about 2,300 inputs across the module). Every input
is handled in a child process (``tests/fuzz_worker.py``): a native crash or a hang is a failure of
this test with the input saved under ``.fuzz-failures/`` (or ``$EDGEINTENT_FUZZ_FAILURES``), never a
dead test runner.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeintent.toolkit.data.writer import write_events

from .helpers import random_log

ROOT = Path(__file__).resolve().parents[1]
SCALE = float(os.environ.get("EDGEINTENT_FUZZ_SCALE", "1"))
FAILURES = Path(os.environ.get("EDGEINTENT_FUZZ_FAILURES", ROOT / ".fuzz-failures"))
TIMEOUT_S = 120


def fuzz(n: int):
    return settings(max_examples=max(1, int(n * SCALE)), derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=False)  # fmt: skip


#: inputs sent in this session (module fixtures may be set up more than once under xdist)
SENT = {"inputs": 0}


class Worker:
    """One ``fuzz_worker.py`` child; restarted after a crash or a hang."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests/fuzz_worker.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)  # fmt: skip
        assert json.loads(self._readline())["status"] == "ready"

    def _readline(self) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT_S)
        return self.proc.stdout.readline() if ready else ""

    def ask(self, req: dict, keep: Path | None = None) -> dict:
        """Send one input; a crash or a hang saves ``keep`` (the input file or directory) and fails."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        SENT["inputs"] += 1
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self._readline()
        if line:
            return json.loads(line)
        code = self.proc.poll()
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        saved = _save(req, keep)
        what = f"died with {_signal_name(code)}" if code is not None else f"hung for {TIMEOUT_S} s"
        pytest.fail(f"the worker {what} on {req['kind']} input; saved as {saved}")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def _signal_name(code: int) -> str:
    import signal

    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def _save(req: dict, keep: Path | None) -> Path:
    digest = hashlib.sha256(json.dumps(req, sort_keys=True).encode()).hexdigest()[:12]
    dst = FAILURES / f"{req['kind']}-{digest}"
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "request.json").write_text(json.dumps(req, indent=1))
    if keep is not None and keep.exists():
        (shutil.copytree if keep.is_dir() else shutil.copy2)(keep, dst / keep.name, **({"symlinks": True} if keep.is_dir() else {}))
    return dst


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def check(res: dict, label: str = "") -> None:
    """The property every input must have: it loads, or it is refused with one short line."""
    assert res["status"] in ("ok", "refused", "failed"), f"{label}: {res.get('type')}: {res.get('message')}\n{res.get('traceback', '')}"
    if res["status"] == "refused":
        msg = res["message"]
        assert msg and "\n" not in msg.strip() and "Traceback" not in msg, f"{label}: {msg!r}"
        assert len(msg) < 800, f"{label}: a {len(msg)}-character refusal"


# -- byte-level mutations ---------------------------------------------------------------------------

TOKENS = [b"null", b"\xef\xbb\xbf", b",", b"\n", b"\r\n", b'"', b"{", b"}", b"[", b"]", b"1e300", b"-1e300", b"nan",
          b"NaN", b"inf", b"-1", b"0", b"9" * 30, b"\x00", b"\xff\xfe", b"true", b'"x"', b"user_id", b"ts_ms", b"stream",
          b"cloud", b"gesture", b"click", b"buy", b" ", b"\t", "é".encode(), b"\\", b":", b"1" * 400]  # fmt: skip

_op = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.one_of(st.sampled_from(TOKENS), st.binary(min_size=1, max_size=8))),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 40)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("dup_line"), st.floats(0, 1), st.just(0)),
)
MUTATIONS = st.lists(_op, min_size=1, max_size=4)


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, where, arg in ops:
        i = int(where * len(b)) if b else 0
        if kind == "flip" and b:
            b[min(i, len(b) - 1)] = arg
        elif kind == "insert":
            b[i:i] = arg
        elif kind == "delete":
            del b[i : i + arg]
        elif kind == "truncate":
            del b[i:]
        elif kind == "dup_line":
            lines = bytes(b).split(b"\n")
            k = min(int(where * len(lines)), len(lines) - 1)
            lines.insert(k, lines[k])
            b = bytearray(b"\n".join(lines))
    return bytes(b)


@pytest.fixture(scope="module")
def event_files(work) -> dict[str, list[bytes]]:
    """Valid event files (three small random logs per format) as bytes: the seeds of the mutations."""
    out: dict[str, list[bytes]] = {}
    for ext in (".csv", ".jsonl", ".parquet"):
        out[ext] = [write_events(random_log(s, users=3, events_per_user=6), work / f"seed{s}{ext}").read_bytes() for s in range(3)]
    return out


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_event_file_byte_mutations(worker, work, event_files, ext):
    @fuzz(300 if ext != ".parquet" else 150)
    @given(seed=st.integers(0, 2), ops=MUTATIONS)
    def run(seed, ops):
        p = work / f"bytes{ext}"
        p.write_bytes(mutate(event_files[ext][seed], ops))
        check(worker.ask({"kind": "events", "path": str(p)}, p), f"{ext} {ops}")

    run()


# -- cell-level mutations -------------------------------------------------------------------------

CELLS = ["", "nan", "NaN", "inf", "-inf", "1e300", "-1e300", "1e-320", "-1", "0", "1.5", "9" * 25, "-9" * 12, "x", "buy",
         "view", "cloud", "gesture", "click", "NULL", "true", '"', "é", " 1", "1 ", "0x10", "1_000", "١", "\u200b"]  # fmt: skip
_cell = st.one_of(st.sampled_from(CELLS), st.text(max_size=6), st.integers(-(2**70), 2**70).map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr))  # fmt: skip


def test_csv_cell_and_header_mutations(worker, work, event_files):
    @fuzz(300)
    @given(seed=st.integers(0, 2), edits=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), _cell), min_size=1, max_size=5),
       header=st.sampled_from(["keep", "drop", "duplicate", "rename", "swap"]), pick=st.floats(0, 1))  # fmt: skip
    def run(seed, edits, header, pick):
        import csv
        import io

        rows = list(csv.reader(io.StringIO(event_files[".csv"][seed].decode())))
        for r, c, value in edits:
            row = rows[1 + min(int(r * (len(rows) - 1)), len(rows) - 2)]
            row[min(int(c * len(row)), len(row) - 1)] = value
        k = min(int(pick * len(rows[0])), len(rows[0]) - 1)
        if header == "drop":
            rows = [r[:k] + r[k + 1 :] for r in rows]
        elif header == "duplicate":
            rows = [r + [r[k]] for r in rows]
        elif header == "rename":
            rows[0][k] = rows[0][k] + "_"
        elif header == "swap":
            rows[0][0], rows[0][k] = rows[0][k], rows[0][0]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        p = work / "cells.csv"
        p.write_text(buf.getvalue())
        check(worker.ask({"kind": "events", "path": str(p)}, p), f"{edits} {header}")

    run()


_json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
              st.sampled_from(CELLS), st.text(max_size=5)),  # fmt: skip
    lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(st.text(max_size=3), inner, max_size=2)),
    max_leaves=4,
)


def test_jsonl_value_mutations(worker, work, event_files):
    @fuzz(300)
    @given(seed=st.integers(0, 2), edits=st.lists(st.tuples(st.floats(0, 1), st.sampled_from(
    ["user_id", "ts_ms", "stream", "action", "item_id", "price", "vx", "x0", "kind", "widget", "orientation", "other"]),
    st.one_of(st.just("<delete>"), _json_value)), min_size=1, max_size=5))  # fmt: skip
    def run(seed, edits):
        lines = [json.loads(ln) for ln in event_files[".jsonl"][seed].decode().splitlines() if ln.strip()]
        for r, key, value in edits:
            obj = lines[min(int(r * len(lines)), len(lines) - 1)]
            if value == "<delete>":
                obj.pop(key, None)
            else:
                obj[key] = value
        p = work / "values.jsonl"
        p.write_text("".join(json.dumps(o) + "\n" for o in lines))
        check(worker.ask({"kind": "events", "path": str(p)}, p), f"{edits}")

    run()


_arrow_value = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
                         st.text(max_size=5))  # fmt: skip


def test_parquet_column_mutations(worker, work, event_files):
    @fuzz(200)
    @given(seed=st.integers(0, 2), op=st.sampled_from(["drop", "cast_string", "cast_float", "nulls", "value", "rename"]),
       pick=st.floats(0, 1), row=st.floats(0, 1), value=_arrow_value)  # fmt: skip
    def run(seed, op, pick, row, value):
        p = work / "cols.parquet"
        p.write_bytes(event_files[".parquet"][seed])
        t = pq.read_table(p)
        k = min(int(pick * t.num_columns), t.num_columns - 1)
        name, col = t.column_names[k], t.column(k)
        if op == "drop":
            t = t.remove_column(k)
        elif op == "rename":
            t = t.rename_columns([n + "_" if i == k else n for i, n in enumerate(t.column_names)])
        elif op in ("cast_string", "cast_float"):
            try:
                t = t.set_column(k, name, col.cast(pa.string() if op == "cast_string" else pa.float64()))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return
        else:
            vals = col.to_pylist()
            i = min(int(row * len(vals)), len(vals) - 1)
            vals[i] = None if op == "nulls" else value
            try:
                t = t.set_column(k, name, pa.array(vals, type=col.type if op == "nulls" else None))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                return
        pq.write_table(t, p)
        check(worker.ask({"kind": "events", "path": str(p)}, p), f"{op} {name} {value!r}")

    run()


# -- decision-point sidecars ----------------------------------------------------------------------


def test_decision_sidecar_mutations(worker, work, event_files):
    @fuzz(150)
    @given(column=st.sampled_from(["user_id", "t_ms", "extra"]), op=st.sampled_from(["drop", "value", "string", "nulls", "shuffle"]),
       value=st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True)), row=st.floats(0, 1))  # fmt: skip
    def run(column, op, value, row):
        from edgeintent.toolkit.data.sources import sidecar_path

        events = work / "side.csv"
        events.write_bytes(event_files[".csv"][0])
        log = random_log(0, users=3, events_per_user=6)
        users = np.asarray(log.users())
        n = 8
        cols = {"user_id": np.resize(users, n), "t_ms": np.linspace(1, 2 * 24 * 3600 * 1000, n).astype(np.int64)}
        t = pa.table(cols)
        if column == "extra":
            t = t.append_column("extra", pa.array(np.zeros(n)))
        else:
            k = t.column_names.index(column)
            vals = t.column(k).to_pylist()
            i = min(int(row * n), n - 1)
            if op == "drop":
                t = t.remove_column(k)
            elif op == "string":
                t = t.set_column(k, column, pa.array([str(v) for v in vals]))
            elif op == "nulls":
                vals[i] = None
                t = t.set_column(k, column, pa.array(vals, pa.int64()))
            elif op == "shuffle":
                t = t.set_column(k, column, pa.array(vals[::-1]))
            else:
                vals[i] = value
                try:
                    t = t.set_column(k, column, pa.array(vals))
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                    return
        pq.write_table(t, sidecar_path(events))
        check(worker.ask({"kind": "events", "path": str(events)}, work), f"{column} {op} {value!r}")

    run()


# -- FeatureSpec files ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec_json() -> dict:
    from edgeintent.toolkit.features import fit_spec

    return fit_spec(random_log(1, users=4, events_per_user=20)).to_json()


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def test_feature_spec_mutations(worker, work, spec_json):
    @fuzz(250)
    @given(edits=st.lists(st.tuples(st.floats(0, 1), st.one_of(st.just("<delete>"), _json_value)), min_size=1, max_size=3),
       ops=st.one_of(st.just([]), MUTATIONS))  # fmt: skip
    def run(edits, ops):
        import copy

        spec = copy.deepcopy(spec_json)
        for where, value in edits:
            paths = [p for p in _paths(spec) if p]
            path = paths[min(int(where * len(paths)), len(paths) - 1)]
            parent = spec
            for k in path[:-1]:
                parent = parent[k]
            if value == "<delete>":
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        p = work / "spec.json"
        p.write_bytes(mutate(json.dumps(spec).encode(), ops) if ops else json.dumps(spec).encode())
        check(worker.ask({"kind": "spec", "path": str(p)}, p), f"{edits} {ops}")

    run()


# -- bundles ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle_seed(trained, work) -> Path:
    """A small dipn bundle with ONNX and MNN exports (never changed: the tests copy it)."""
    from edgeintent.exporters import export_bundle, get_target

    path = work / "bundle-seed"
    shutil.copytree(trained("dipn-tiny"), path)
    for t in ("onnx", "mnn"):
        if get_target(t).run_missing() is None:
            export_bundle(path, t)
    return path


def _rehash(path: Path) -> None:
    """Rewrite the manifest so it matches the files again: tampering a checksum cannot see."""
    mpath = path / "manifest.json"
    manifest = json.loads(mpath.read_text())
    for rel in list(manifest["files"]):
        f = path / rel
        if f.is_file() and not f.is_symlink():
            blob = f.read_bytes()
            manifest["files"][rel] = {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
    mpath.write_text(json.dumps(manifest))


BUNDLE_OPS = ["flip", "truncate", "delete", "extra", "symlink_file", "symlink_dir", "manifest_dotdot",
              "manifest_absolute", "manifest_drop", "manifest_json", "json_rehashed", "meta_rehashed"]  # fmt: skip


def test_bundle_mutations(worker, work, bundle_seed):
    @fuzz(250)
    @given(op=st.sampled_from(BUNDLE_OPS), pick=st.floats(0, 1), ops=MUTATIONS, value=_json_value)
    def run(op, pick, ops, value):
        path = work / "bundle"
        if path.exists():
            shutil.rmtree(path)
        shutil.copytree(bundle_seed, path)
        files = sorted(p for p in path.rglob("*") if p.is_file())
        f = files[min(int(pick * len(files)), len(files) - 1)]
        manifest = json.loads((path / "manifest.json").read_text())
        if op == "flip":
            f.write_bytes(mutate(f.read_bytes(), ops))
        elif op == "truncate":
            f.write_bytes(f.read_bytes()[: int(pick * f.stat().st_size)])
        elif op == "delete":
            f.unlink()
        elif op == "extra":
            (path / "exports" / "extra.bin").write_bytes(b"x")
        elif op == "symlink_file":
            outside = work / "outside.txt"
            outside.write_text("secret")
            f.unlink()
            f.symlink_to(outside)
        elif op == "symlink_dir":
            shutil.rmtree(path / "exports")
            (path / "exports").symlink_to(bundle_seed / "exports")
        elif op in ("manifest_dotdot", "manifest_absolute", "manifest_drop"):
            rel = next(iter(manifest["files"]))
            entry = manifest["files"].pop(rel)
            if op != "manifest_drop":
                manifest["files"]["../" + rel if op == "manifest_dotdot" else "/etc/" + rel] = entry
            (path / "manifest.json").write_text(json.dumps(manifest))
        elif op == "manifest_json":
            (path / "manifest.json").write_bytes(mutate((path / "manifest.json").read_bytes(), ops))
        elif op in ("json_rehashed", "meta_rehashed"):
            # a JSON file changed with its checksum updated: what a checksum cannot catch, validation must
            pattern = "*.meta.json" if op == "meta_rehashed" else "*.json"
            jsons = sorted(p for p in path.rglob(pattern) if p.name != "manifest.json")
            if not jsons:
                return
            j = jsons[min(int(pick * len(jsons)), len(jsons) - 1)]
            obj = json.loads(j.read_text())
            paths = [p for p in _paths(obj) if p]
            where = paths[min(int(pick * 7919 % len(paths)), len(paths) - 1)]
            parent = obj
            for k in where[:-1]:
                parent = parent[k]
            parent[where[-1]] = value
            j.write_text(json.dumps(obj))
            _rehash(path)
        check(worker.ask({"kind": "bundle", "path": str(path)}, path), f"{op} {f.relative_to(path)}")

    run()


def test_onnx_external_data_outside_the_bundle_is_refused(worker, work, bundle_seed):
    """An ONNX model (checksums updated) whose tensors point at a file outside the bundle."""
    import onnx

    path = work / "external"
    if path.exists():
        shutil.rmtree(path)
    shutil.copytree(bundle_seed, path)
    model_path = path / "exports/onnx/model.onnx"
    if not model_path.exists():
        pytest.skip("no ONNX export")
    secret = work / "secret.bin"
    proto = onnx.load(str(model_path))
    init = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    secret.write_bytes(init.raw_data)
    init.ClearField("raw_data")
    init.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", os.path.relpath(secret, model_path.parent)), ("offset", "0"), ("length", str(secret.stat().st_size))):
        init.external_data.add(key=k, value=v)
    model_path.write_bytes(proto.SerializeToString())
    _rehash(path)
    res = worker.ask({"kind": "bundle", "path": str(path)}, path)
    check(res)
    assert res["status"] == "refused" and "external data" in res["message"].lower(), res


# -- CLI arguments ----------------------------------------------------------------------------------

COMMANDS = [["data", "inspect"], ["data", "calibrate"], ["features", "fit"], ["features", "build"], ["train"], ["eval"],
            ["export"], ["parity"], ["bench"], ["quantize"], ["allocate"], ["policy-eval"], ["models"], ["targets"],
            ["devices"], []]  # fmt: skip
FLAGS = ["--target", "--device", "--runs", "--warmup", "--json", "--set", "--data", "--out", "--precision", "--mode",
         "--budget", "--epochs", "--model", "--spec", "--bundle", "--amounts", "--gamma", "--objective", "--junit",
         "--memory-mb", "--targets", "--threads", "--help", "--version", "--no-parity", "--plot", "--budget-auc"]  # fmt: skip
VALUES = ["onnx", "coreml", "mnn", "all", "tflite", "cpu-arm", "phone", "-1", "0", "1e9", "nan", "inf", "x", "",
          "sim:0", "sim:-1", "sim:2:x", "sim:abc", "taobao:/nope", "hmog:", "file:", "/nonexistent", "rnn=while-loop",
          "x=y", "=", "fp16", "int3", "dipn", "nope", "0,1,nan", "1,,2", "incremental", "é", "--", "-", "..", "/"]  # fmt: skip


def test_cli_arguments(worker, work):
    @fuzz(250)
    @given(cmd=st.sampled_from(COMMANDS), args=st.lists(st.one_of(st.sampled_from(FLAGS), st.sampled_from(VALUES), st.just("<file>"),
                                                             st.just("<bundle-dir>")), max_size=6))  # fmt: skip
    def run(cmd, args):
        garbage = work / "garbage.csv"
        garbage.write_bytes(b"\x00\xff not events")
        notbundle = work / "not-a-bundle"
        notbundle.mkdir(exist_ok=True)
        out = work / "cli-out"
        argv = [*cmd, *[str(garbage) if a == "<file>" else str(notbundle) if a == "<bundle-dir>" else a for a in args]]
        argv = [str(out) if a == "/" else a for a in argv]  # never write at the root
        res = worker.ask({"kind": "cli", "argv": argv})
        check(res, f"edgeintent {' '.join(argv)}")
        if res["status"] == "refused":  # click's usage errors are several lines; ours are one
            lines = [ln for ln in res["message"].splitlines() if ln.startswith("error:")]
            assert len(lines) <= 1, res["message"]

    run()


def test_the_suite_is_big_enough():
    """Run last in this module: it counts what the tests above sent (≥ 2,000 at scale 1)."""
    print(f"fuzz inputs sent: {SENT['inputs']:,}")  # shown with pytest -s
    if SCALE >= 1:
        assert SENT["inputs"] >= 2000, SENT["inputs"]


@pytest.mark.parametrize("key,value", [("drop_features", [None]), ("embed_dim", "x"), ("streams", ["nope"]), ("hidden", -1),
                                       ("rnn", 7), ("tasks", None)])  # fmt: skip
def test_config_with_a_bad_model_option_is_refused_in_one_line(worker, work, bundle_seed, key, value):
    """config.json changed with its checksum updated (found by a 20,000-input run: a None in drop_features)."""
    path = work / "config-bad"
    if path.exists():
        shutil.rmtree(path)
    shutil.copytree(bundle_seed, path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"][key] = value
    (path / "config.json").write_text(json.dumps(cfg))
    _rehash(path)
    res = worker.ask({"kind": "bundle", "path": str(path)}, path)
    check(res, f"{key}={value!r}")
    assert res["status"] == "refused", res
