from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from edgeintent.errors import BundleError, EdgeIntentError
from edgeintent.toolkit import bundle as B
from edgeintent.toolkit.features import FeatureSpec, fit_spec

from .helpers import random_log

FILES = ["config.json", "feature_spec.json", "golden.npz", "manifest.json", "metrics.json", "weights.safetensors"]


@pytest.fixture(scope="module")
def spec() -> FeatureSpec:
    return fit_spec(random_log(0, users=4, events_per_user=20))


def _inputs(spec: FeatureSpec, reverse: bool = False) -> dict:
    rng = np.random.default_rng(0)
    weights = {
        "emb.gesture.0": rng.normal(size=(7, 4)).astype(np.float32),
        "gru.weight_ih": rng.normal(size=(12, 4)).astype(np.float32),
        "head.bias": np.array([0.5], np.float32),
        "steps": np.array(3, np.int64),
        "q.int8": np.arange(-4, 4, dtype=np.int8),
    }
    golden = {
        "x_gesture": rng.integers(0, 7, size=(3, 5, 14)).astype(np.int32),
        "len_gesture": np.array([0, 1, 5], np.int32),
        "p_buy_rt": rng.random(3).astype(np.float32),
        "case": np.array(["empty", "one", "max"]),
    }
    config = {"model": {"name": "dipn-tiny", "hidden": 16}, "train": {"epochs": 2, "lr": 1e-3, "tasks": ["buy_rt", "stay"]}}
    metrics = {"test": {"buy_rt": {"auc": 0.71, "auc_ci": [0.65, 0.77], "n": 120}}}
    if reverse:  # same content, other insertion order everywhere
        weights = dict(reversed(weights.items()))
        golden = dict(reversed(golden.items()))
        config = {"train": config["train"], "model": dict(reversed(config["model"].items()))}
    return {"config": config, "weights": weights, "spec": spec, "golden": golden, "metrics": metrics}


def _write(path: Path, spec: FeatureSpec, **kw) -> Path:
    args = _inputs(spec)
    args.update(kw)
    return B.write_bundle(path, **args)


def _rehash(path: Path, rel: str) -> None:
    """Make the manifest agree with a file that was changed (simulates a consistent but bad writer)."""
    m = json.loads((path / "manifest.json").read_text())
    data = (path / rel).read_bytes()
    m["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (path / "manifest.json").write_text(json.dumps(m))


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name != name)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    assert isinstance(exc.value, EdgeIntentError)
    return msg


# --- writing and loading ----------------------------------------------------------------------


def test_round_trip(tmp_path, spec):
    inputs = _inputs(spec)
    path = B.write_bundle(tmp_path / "b", **inputs)
    assert sorted(os.listdir(path)) == FILES
    b = B.load_bundle(path)
    assert b.path == path
    assert b.spec == spec
    assert b.metrics == inputs["metrics"]
    versions = b.config.pop("versions")
    assert b.config == inputs["config"]
    assert set(versions) >= {"edgeintent", "torch", "numpy", "python"}
    assert versions["numpy"] == np.__version__
    assert sorted(b.weights) == sorted(inputs["weights"])
    for k, v in inputs["weights"].items():
        assert b.weights[k].dtype == v.dtype and b.weights[k].shape == v.shape  # 0-d stays 0-d
        assert b.weights[k].flags.writeable
        np.testing.assert_array_equal(b.weights[k], v)
    for k, v in inputs["golden"].items():
        assert b.golden[k].dtype == v.dtype
        np.testing.assert_array_equal(b.golden[k], v)
    # the manifest covers every other file with its sha256 and size
    assert sorted(b.manifest["files"]) == [f for f in FILES if f != "manifest.json"]
    for rel, entry in b.manifest["files"].items():
        data = (path / rel).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert B.verify_bundle(path) == b.manifest


def test_two_writes_give_identical_bytes(tmp_path, spec, monkeypatch):
    a = B.write_bundle(tmp_path / "a", **_inputs(spec))
    # another insertion order, and a clock a decade later (zip and file timestamps must not leak in)
    later = time.time() + 10 * 365 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    b = B.write_bundle(tmp_path / "b", **_inputs(spec, reverse=True))
    monkeypatch.undo()
    for rel in FILES:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    cfg = (a / "config.json").read_text()
    assert cfg == json.dumps(json.loads(cfg), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_golden_npz_is_a_plain_npz_with_pinned_headers(spec):
    import zipfile

    data = B.golden_bytes(_inputs(spec)["golden"])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {(i.date_time, i.compress_type, i.create_system) for i in infos} == {(B.ZIP_DATE_TIME, zipfile.ZIP_STORED, 3)}
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        assert sorted(z.files) == ["case", "len_gesture", "p_buy_rt", "x_gesture"]


def test_non_contiguous_and_torch_weights_are_stored_correctly(tmp_path, spec):
    torch = pytest.importorskip("torch")
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    weights = {
        "transposed": base.T,  # safetensors' numpy writer would scramble this view
        "strided": base[:, ::2],
        "tensor": torch.arange(6, dtype=torch.float32, requires_grad=True).reshape(2, 3),
        "big_endian": base.astype(">f4"),
    }
    b = B.load_bundle(_write(tmp_path / "b", spec, weights=weights))
    np.testing.assert_array_equal(b.weights["transposed"], base.T)
    np.testing.assert_array_equal(b.weights["strided"], base[:, ::2])
    np.testing.assert_array_equal(b.weights["tensor"], np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(b.weights["big_endian"], base)
    with pytest.raises(BundleError, match="bfloat16") as exc:
        _write(tmp_path / "c", spec, weights={"w": torch.zeros(2, dtype=torch.bfloat16)})
    assert "float32" in _one_line(exc)


def test_extra_files_and_nan_metrics(tmp_path, spec):
    path = _write(
        tmp_path / "b",
        spec,
        metrics={"auc": float("nan"), "n": np.int64(3), "rate": np.float32(0.5)},
        extra_files={"exports/onnx/model.onnx": b"onnx-bytes", "README.txt": b"hi"},
    )
    b = B.load_bundle(path)
    assert np.isnan(b.metrics["auc"]) and b.metrics["n"] == 3 and b.metrics["rate"] == 0.5
    assert b.file("exports/onnx/model.onnx").read_bytes() == b"onnx-bytes"
    assert "exports/onnx/model.onnx" in b.files
    with pytest.raises(BundleError, match="not in this bundle"):
        b.file("exports/coreml/model.mlpackage")
    with pytest.raises(BundleError, match="not a plain relative path"):
        _write(tmp_path / "c", spec, extra_files={"../escape.bin": b"x"})
    with pytest.raises(BundleError, match="core bundle file"):
        _write(tmp_path / "c", spec, extra_files={"config.json": b"{}"})
    assert not (tmp_path / "c").exists()


def test_refuses_to_replace_without_overwrite(tmp_path, spec):
    path = _write(tmp_path / "b", spec)
    with pytest.raises(BundleError, match="already exists") as exc:
        _write(path, spec)
    assert "overwrite" in _one_line(exc)
    before = (path / "metrics.json").read_bytes()
    _write(path, spec, metrics={"auc": 0.9}, overwrite=True)
    assert (path / "metrics.json").read_bytes() != before
    assert B.load_bundle(path).metrics == {"auc": 0.9}
    assert _leftovers(tmp_path, "b") == []  # neither the old bundle nor a temp directory remains


def test_overwrite_refuses_a_directory_that_is_not_a_bundle(tmp_path, spec):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    with pytest.raises(BundleError, match="not a bundle"):
        _write(home, spec, overwrite=True)
    assert (home / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="not a bundle directory"):
        _write(tmp_path / "file", spec, overwrite=True)


@pytest.mark.parametrize(
    "bad_weight",
    [np.array([1, "a"], dtype=object), np.zeros(2, np.complex64)],
    ids=["object", "complex"],
)
def test_rejected_weight_leaves_nothing_behind(tmp_path, spec, bad_weight):
    with pytest.raises(BundleError, match="dtype") as exc:
        _write(tmp_path / "b", spec, weights={"ok": np.zeros(2, np.float32), "bad": bad_weight})
    assert _one_line(exc).startswith(f"{tmp_path / 'b'}: weights.safetensors: tensor 'bad' has dtype")
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_leaves_no_half_bundle(tmp_path, spec, monkeypatch):
    real = B._write_file
    calls = []

    def flaky(path, data):
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(B, "_write_file", flaky)
    with pytest.raises(BundleError, match="could not write the bundle .No space left") as exc:
        _write(tmp_path / "out" / "b", spec)
    assert tmp_path.joinpath("out").is_dir() and "out/b" in _one_line(exc)
    assert list((tmp_path / "out").iterdir()) == []  # no target, no temp directory

    # the same failure while overwriting keeps the old bundle intact
    monkeypatch.setattr(B, "_write_file", real)
    old = _write(tmp_path / "out" / "b", spec, metrics={"v": 1})
    calls.clear()
    monkeypatch.setattr(B, "_write_file", flaky)
    with pytest.raises(BundleError):
        _write(old, spec, metrics={"v": 2}, overwrite=True)
    assert B.load_bundle(old).metrics == {"v": 1}
    assert _leftovers(tmp_path / "out", "b") == []


def test_failed_swap_restores_the_old_bundle(tmp_path, spec, monkeypatch):
    old = _write(tmp_path / "b", spec, metrics={"v": 1})
    real = os.rename
    calls = []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # old moved aside; moving the new one in fails
            raise OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(B.os, "rename", rename)
    with pytest.raises(BundleError, match="Input/output error"):
        _write(old, spec, metrics={"v": 2}, overwrite=True)
    monkeypatch.undo()
    assert B.load_bundle(old).metrics == {"v": 1}
    assert _leftovers(tmp_path, "b") == []


# --- verification -----------------------------------------------------------------------------


@pytest.mark.parametrize("rel", [f for f in FILES if f != "manifest.json"] + ["exports/onnx/model.onnx"])
def test_a_changed_byte_in_any_file_is_caught(tmp_path, spec, rel):
    path = _write(tmp_path / "b", spec, extra_files={"exports/onnx/model.onnx": b"\x08\x01onnx"})
    target = path / rel
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError) as exc:
        B.load_bundle(path)
    msg = _one_line(exc)
    assert msg.startswith(f"{path}: {rel} does not match manifest.json (sha256 ")
    assert msg.endswith("the bundle was modified after it was written")
    with pytest.raises(BundleError, match=f"{rel} does not match"):
        B.verify_bundle(path)


def test_a_resized_file_is_reported_by_size(tmp_path, spec):
    path = _write(tmp_path / "b", spec)
    with open(path / "golden.npz", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match=r"golden.npz does not match manifest.json \(size \d+ bytes, expected \d+\)"):
        B.verify_bundle(path)


def test_missing_and_extra_files(tmp_path, spec):
    path = _write(tmp_path / "b", spec)
    (path / "weights.pt").write_bytes(b"pickle!")
    with pytest.raises(BundleError) as exc:
        B.load_bundle(path)
    assert _one_line(exc) == (
        f"{path}: weights.pt is not listed in manifest.json; the bundle was modified after it was written "
        "(files are added with add_files)"
    )
    (path / "weights.pt").unlink()
    (path / "exports" / "onnx").mkdir(parents=True)
    (path / "exports" / "onnx" / "model.onnx").write_bytes(b"x")
    with pytest.raises(BundleError, match="exports/onnx/model.onnx is not listed"):
        B.verify_bundle(path)
    (path / "exports" / "onnx" / "model.onnx").unlink()
    B.verify_bundle(path)  # empty directories are harmless
    (path / "golden.npz").unlink()
    (path / "stray.bin").write_bytes(b"x")
    with pytest.raises(BundleError) as exc:
        B.verify_bundle(path)
    assert _one_line(exc) == (
        f"{path}: golden.npz is listed in manifest.json but missing; the bundle is incomplete (and 1 more problem)"
    )


def test_symlinks_are_refused(tmp_path, spec):
    path = _write(tmp_path / "b", spec)
    (tmp_path / "outside.bin").write_bytes(b"x")
    (path / "link.bin").symlink_to(tmp_path / "outside.bin")
    with pytest.raises(BundleError, match="link.bin is a symbolic link"):
        B.verify_bundle(path)


def test_not_a_bundle(tmp_path, spec):
    with pytest.raises(BundleError) as exc:
        B.load_bundle(tmp_path / "nope")
    assert _one_line(exc) == f"{tmp_path / 'nope'}: no such bundle (the directory does not exist)"
    (tmp_path / "f").write_text("x")
    with pytest.raises(BundleError, match="a bundle is a directory"):
        B.verify_bundle(tmp_path / "f")
    (tmp_path / "d").mkdir()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        B.verify_bundle(tmp_path / "d")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "manifest.json is not valid JSON"),
        ("[]", "manifest.json is malformed"),
        ('{"format": "edgeintent-bundle", "version": 99, "files": {}}', "bundle version 99 is not supported"),
        ('{"format": "edgeintent-bundle", "version": 1, "files": {"../../etc/passwd": {"sha256": "' + "0" * 64 + '", "size": 1}}}', "manifest.json is malformed .* not a plain relative path"),
        ('{"format": "edgeintent-bundle", "version": 1, "files": {"config.json": {"sha256": "xyz", "size": 1}}}', "needs \"sha256\""),
        ('{"format": "edgeintent-bundle", "version": 1, "files": {}}', "does not list config.json; the bundle is incomplete"),
    ],
)
def test_malformed_manifest(tmp_path, spec, text, match):
    path = _write(tmp_path / "b", spec)
    (path / "manifest.json").write_text(text)
    with pytest.raises(BundleError, match=match) as exc:
        B.load_bundle(path)
    assert _one_line(exc).startswith(f"{path}: ")


def test_malformed_json_inside_a_consistent_bundle(tmp_path, spec):
    path = _write(tmp_path / "b", spec)
    (path / "config.json").write_text("{oops")
    _rehash(path, "config.json")
    B.verify_bundle(path)  # hashes agree …
    with pytest.raises(BundleError, match="config.json is not valid JSON"):
        B.load_bundle(path)  # … but it does not load
    path2 = _write(tmp_path / "c", spec)
    (path2 / "feature_spec.json").write_text('{"spec_version": 1}')
    _rehash(path2, "feature_spec.json")
    with pytest.raises(BundleError, match="feature_spec.json: malformed FeatureSpec"):
        B.load_bundle(path2)


class _Boom:
    ran = False

    def __reduce__(self):
        return (_set_ran, ())


def _set_ran():
    _Boom.ran = True
    return 0


def test_loading_never_unpickles(tmp_path, spec):
    path = _write(tmp_path / "b", spec)
    buf = io.BytesIO()
    np.savez(buf, evil=np.array([_Boom()], dtype=object))  # np.savez pickles object arrays
    (path / "golden.npz").write_bytes(buf.getvalue())
    _rehash(path, "golden.npz")
    with pytest.raises(BundleError, match="golden.npz is not a readable .npz without pickle"):
        B.load_bundle(path)
    assert not _Boom.ran
    with pytest.raises(BundleError, match="object arrays would need pickle"):
        _write(tmp_path / "c", spec, golden={"evil": np.array([_Boom()], dtype=object)})


# --- add_files --------------------------------------------------------------------------------


def test_add_files_updates_the_manifest(tmp_path, spec):
    path = _write(tmp_path / "b", spec)
    B.add_files(path, {"exports/onnx/model.onnx": b"v1", "exports/onnx/report.json": b"{}"})
    m = B.verify_bundle(path)
    assert m["files"]["exports/onnx/model.onnx"] == {"sha256": hashlib.sha256(b"v1").hexdigest(), "size": 2}
    B.add_files(path, {"exports/onnx/model.onnx": b"version 2"})  # re-export replaces
    b = B.load_bundle(path)
    assert b.file("exports/onnx/model.onnx").read_bytes() == b"version 2"
    assert (path / "manifest.json").read_bytes() == B.canonical_json(b.manifest)
    assert sorted(p.name for p in (path / "exports" / "onnx").iterdir()) == ["model.onnx", "report.json"]


def test_add_files_to_a_bundle_named_by_a_relative_path(tmp_path, spec, monkeypatch):
    """``edgeintent export out/x``: a relative bundle path (it failed with a ValueError traceback)."""
    _write(tmp_path / "b", spec)
    monkeypatch.chdir(tmp_path)
    B.add_files(Path("b"), {"exports/onnx/model.onnx": b"v1"})
    assert B.load_bundle(Path("b")).file("exports/onnx/model.onnx").read_bytes() == b"v1"


def test_add_files_replaces_a_directory_artifact_as_a_whole(tmp_path, spec):
    path = _write(tmp_path / "b", spec)
    pkg = "exports/coreml/model.mlpackage"
    B.add_files(path, {f"{pkg}/Manifest.json": b"1", f"{pkg}/Data/w/old.bin": b"old", f"{pkg}/Data/m.mil": b"m1",
                       "exports/coreml/model.mlpackage.meta.json": b"{}"})  # fmt: skip
    B.add_files(path, {f"{pkg}/Manifest.json": b"2", f"{pkg}/Data/m.mil": b"m2"}, replace=(pkg,))
    m = B.verify_bundle(path)  # no extra file on disk, none missing from it
    assert {f for f in m["files"] if f.startswith("exports/")} == {
        f"{pkg}/Data/m.mil", f"{pkg}/Manifest.json", "exports/coreml/model.mlpackage.meta.json"}  # fmt: skip
    assert not (path / pkg / "Data" / "w").exists()  # the directory the stale file left empty is gone
    with pytest.raises(BundleError, match="would empty"):
        B.add_files(path, {"exports/coreml/other.bin": b"x"}, replace=(pkg,))
    B.verify_bundle(path)


def test_add_files_removes_files_and_directories_in_the_same_commit(tmp_path, spec):
    path = _write(tmp_path / "b", spec)
    pkg = "exports/coreml/model.fp16.mlpackage"
    B.add_files(path, {"exports/onnx/model.int8.onnx": b"q", "exports/onnx/model.int8.onnx.meta.json": b"{}",
                       f"{pkg}/Manifest.json": b"1", f"{pkg}/Data/w.bin": b"w", "exports/onnx/model.onnx": b"f"})  # fmt: skip
    once = tmp_path / "once"
    _write(once, spec)
    B.add_files(once, {"exports/onnx/model.onnx": b"f", "exports/onnx/model.fp16.onnx": b"h"})
    # the int8 artifact and its meta (files) and the mlpackage (a directory) out, an fp16 artifact in: one commit
    B.add_files(path, {"exports/onnx/model.fp16.onnx": b"h"},
                remove=("exports/onnx/model.int8.onnx", "exports/onnx/model.int8.onnx.meta.json", pkg))
    assert B.verify_bundle(path) == B.verify_bundle(once)
    assert not (path / "exports/coreml").exists()  # directories the removed files leave empty are gone
    assert sorted(p.name for p in (path / "exports/onnx").iterdir()) == ["model.fp16.onnx", "model.onnx"]
    B.remove_files(path, ["exports/onnx/model.fp16.onnx"])
    assert "exports/onnx/model.fp16.onnx" not in B.verify_bundle(path)["files"]
    # a path both removed and added is replaced, not deleted
    B.add_files(path, {"exports/onnx/model.onnx": b"g"}, remove=("exports/onnx",))
    assert B.load_bundle(path).file("exports/onnx/model.onnx").read_bytes() == b"g"


@pytest.mark.parametrize(
    ("rel", "match"),
    [
        ("metrics.json", "cannot remove metrics.json"),
        ("manifest.json", "cannot remove manifest.json"),
        ("exports/onnx/nope.onnx", "holds no such file or directory"),
        ("exports/onn", "holds no such file or directory"),  # a prefix of a name is not a directory
        ("../evil", "not a plain relative path"),
    ],
)
def test_remove_files_refuses_what_it_cannot_remove(tmp_path, spec, rel, match):
    path = _write(tmp_path / "b", spec)
    B.add_files(path, {"exports/onnx/model.onnx": b"f"})
    before = (path / "manifest.json").read_bytes()
    with pytest.raises(BundleError, match=match) as exc:
        B.add_files(path, {"exports/onnx/model.fp16.onnx": b"h"}, remove=(rel,))
    assert _one_line(exc).startswith(f"{path}: ")
    assert (path / "manifest.json").read_bytes() == before and not (path / "exports/onnx/model.fp16.onnx").exists()
    B.verify_bundle(path)


def test_a_removal_interrupted_after_its_journal_is_finished_by_the_next_open(tmp_path, spec, monkeypatch):
    path = _write(tmp_path / "b", spec)
    B.add_files(path, {"exports/onnx/model.int8.onnx": b"q", "exports/onnx/model.onnx": b"f"})
    real = os.replace
    calls = []

    def dying(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # 1: the journal; 2: the manifest
            raise SystemExit("killed")
        return real(src, dst)

    monkeypatch.setattr(B.os, "replace", dying)
    with pytest.raises(SystemExit):
        B.remove_files(path, ["exports/onnx/model.int8.onnx"])
    monkeypatch.undo()
    assert (path / B.JOURNAL).exists() and (path / "exports/onnx/model.int8.onnx").exists()
    assert "exports/onnx/model.int8.onnx" not in B.verify_bundle(path)["files"]  # rolled forward
    assert not (path / "exports/onnx/model.int8.onnx").exists() and not (path / B.JOURNAL).exists()


@pytest.mark.parametrize(
    ("rel", "match"),
    [
        ("../evil.onnx", "not a plain relative path"),
        ("exports/../../evil.onnx", "not a plain relative path"),
        ("/tmp/evil.onnx", "not a plain relative path"),
        ("exports\\evil.onnx", "not a plain relative path"),
        ("exports//x", "not a plain relative path"),
        ("manifest.json", "cannot replace manifest.json"),
        ("weights.safetensors", "cannot replace weights.safetensors"),
        ("metrics.json/x", "metrics.json is a file"),
    ],
)
def test_add_files_refuses_bad_paths(tmp_path, spec, rel, match):
    path = _write(tmp_path / "b", spec)
    before = (path / "manifest.json").read_bytes()
    with pytest.raises(BundleError, match=match) as exc:
        B.add_files(path, {rel: b"x"})
    assert _one_line(exc).startswith(f"{path}: ")
    assert (path / "manifest.json").read_bytes() == before
    assert not (tmp_path / "evil.onnx").exists()
    B.verify_bundle(path)


def test_add_files_does_not_bless_a_modified_bundle(tmp_path, spec):
    path = _write(tmp_path / "b", spec)
    (path / "metrics.json").write_text('{"auc": 0.99}')
    with pytest.raises(BundleError, match="metrics.json does not match"):
        B.add_files(path, {"exports/onnx/model.onnx": b"x"})
    assert not (path / "exports").exists()
    with pytest.raises(BundleError, match="no such bundle"):
        B.add_files(tmp_path / "nope", {"a.bin": b"x"})


def test_add_files_failure_leaves_the_bundle_valid(tmp_path, spec, monkeypatch):
    path = _write(tmp_path / "b", spec)
    real = B._write_file
    calls = []

    def flaky(p, data):
        calls.append(p)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(p, data)

    monkeypatch.setattr(B, "_write_file", flaky)
    with pytest.raises(BundleError, match="the bundle is unchanged"):
        B.add_files(path, {"exports/a.bin": b"a", "exports/b.bin": b"b"})
    monkeypatch.undo()
    B.verify_bundle(path)  # no stray temp file, manifest untouched
    assert [p.name for p in (path / "exports").iterdir()] == []
