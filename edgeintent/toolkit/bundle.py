"""Bundles: the directory every pipeline stage reads and writes.

::

    config.json            model + training config, and "versions" (edgeintent, torch, numpy, python, …)
    weights.safetensors    tensors, no pickle
    feature_spec.json      what the phone needs to featurize exactly as training did
    golden.npz             recorded inputs + reference outputs (what parity replays)
    metrics.json           evaluation results
    exports/<target>/…     artifacts added later with :func:`add_files`
    manifest.json          sha256 and size of every other file

Guarantees:

- **Atomic.** :func:`write_bundle` builds the bundle in a hidden temp directory next to the target
  and renames it into place; a failure at any point removes the temp directory, so there is never a
  half bundle. With ``overwrite`` the old bundle is moved aside, the new one renamed in, and only
  then is the old one deleted. :func:`add_files` writes every new file under a temp name first,
  renames them in, replaces ``manifest.json`` (temp + rename), and only then deletes the files it
  removes (its ``replace`` / ``remove`` arguments, :func:`remove_files`): a stage that installs a
  different set of files than last time drops the old ones in the same commit.
- **Deterministic.** The same inputs give the same bytes in every file: JSON with sorted keys and a
  fixed indent; safetensors with sorted keys and no metadata; ``golden.npz`` is a zip written here
  with every header field pinned (see :func:`golden_bytes`).
- **Verified, never unpickled.** :func:`load_bundle` checks every file against the manifest (a
  changed byte, a missing file, a file the manifest does not list) before parsing anything, parses
  the very bytes it hashed, and reads only safetensors, JSON and ``.npy`` with ``allow_pickle=False``.

Every problem raises :class:`~edgeintent.errors.BundleError` with one line naming the bundle, the
file and what is wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgeintent.errors import BundleError, SpecError
from edgeintent.io import atomic_path, canonical_json, default_mode
from edgeintent.toolkit.features import FeatureSpec

BUNDLE_FORMAT = "edgeintent-bundle"
BUNDLE_VERSION = 1

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
SPEC = "feature_spec.json"
GOLDEN = "golden.npz"
METRICS = "metrics.json"
MANIFEST = "manifest.json"
#: Files every bundle has; :func:`add_files` may not replace them (write a new bundle instead).
CORE_FILES: tuple[str, ...] = (CONFIG, WEIGHTS, SPEC, GOLDEN, METRICS)


@dataclass(frozen=True)
class BundleKind:
    """What a verified directory holds: its manifest's ``format`` and the files every one of them has.

    Model bundles are :data:`MODEL_BUNDLE`; another stage that ships a verified directory (the ranker's,
    ``rank/fit.py``) declares its own kind and gets the same atomic writes, journalled ``add_files`` and
    verification through :func:`write_files`, :func:`verify_files` and :func:`add_files`."""

    format: str
    core: tuple[str, ...]


MODEL_BUNDLE = BundleKind(BUNDLE_FORMAT, CORE_FILES)

#: Fixed zip header fields for golden.npz (the zip epoch; "Unix"; rw-r--r--).
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_ZIP_UNIX = 3
_ZIP_FILE_MODE = 0o644 << 16

#: dtype kinds safetensors stores and numpy can represent: bool, signed, unsigned, float.
_WEIGHT_KINDS = "biuf"


@dataclass
class Bundle:
    """A verified, loaded bundle. ``weights`` and ``golden`` are plain numpy arrays."""

    path: Path
    config: dict
    weights: dict[str, np.ndarray]
    spec: FeatureSpec
    golden: dict[str, np.ndarray]
    metrics: dict
    manifest: dict

    @property
    def files(self) -> list[str]:
        """Every file the manifest lists (POSIX paths relative to the bundle), sorted."""
        return sorted(self.manifest["files"])

    def file(self, rel: str) -> Path:
        """Path of a listed file, e.g. ``bundle.file("exports/onnx/model.onnx")``."""
        if rel not in self.manifest["files"]:
            raise BundleError(f"{self.path}: {rel} is not in this bundle (it has {', '.join(self.files)})")
        return self.path / rel


def environment_versions() -> dict[str, str | None]:
    """Versions recorded in config.json (read from package metadata: torch is not imported)."""
    from edgeintent import __version__

    def dist(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "edgeintent": __version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "safetensors": dist("safetensors"),
        "torch": dist("torch"),
    }


def _as_weight(name: Any, value: Any, where: str = WEIGHTS) -> np.ndarray:
    if not isinstance(name, str) or not name:
        raise BundleError(f"{where}: tensor names must be non-empty strings, got {name!r}")
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch.Tensor, without importing torch
        try:
            value = value.detach().cpu().contiguous().numpy()
        except (TypeError, RuntimeError) as exc:
            raise BundleError(
                f"{where}: tensor {name!r} ({value.dtype}) has no numpy equivalent ({exc}); cast it to float32 or float16"
            ) from None
    arr = np.asarray(value)
    if arr.dtype.kind not in _WEIGHT_KINDS:
        raise BundleError(
            f"{where}: tensor {name!r} has dtype {arr.dtype}; bundles store bool, int, uint and float tensors only"
        )
    # safetensors' numpy writer copies nbytes from the data pointer: a non-contiguous view (e.g. a
    # transpose) would be written silently scrambled, so make every tensor C-contiguous first.
    # (Not np.ascontiguousarray: it turns a 0-d scalar into shape (1,).)
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def weights_bytes(weights: Mapping[str, Any], where: str = WEIGHTS) -> bytes:
    """safetensors bytes of ``weights`` (sorted names, no metadata, C-contiguous little-endian data)."""
    from safetensors import SafetensorError
    from safetensors.numpy import save

    arrays = {name: _as_weight(name, weights[name], where) for name in sorted(weights, key=str)}
    try:
        return save(arrays)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise BundleError(f"{where}: safetensors cannot store the tensors ({exc})") from None


def golden_bytes(golden: Mapping[str, Any], where: str = GOLDEN) -> bytes:
    """An uncompressed ``.npz`` (readable by ``np.load``) with every byte fixed by the arrays alone.

    ``np.savez`` happens to be reproducible on CPython 3.11/Linux (``ZipFile.open(name, "w")`` stamps
    1980-01-01), but that rests on zipfile internals: the creator system differs on Windows, and the
    member order follows the caller's dict order. Here members are sorted and the date, creator
    system and permissions of every zip entry are pinned; arrays are written without pickle.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key in sorted(golden, key=str):
            if not isinstance(key, str) or not key or "\x00" in key:
                raise BundleError(f"{where}: array names must be non-empty strings, got {key!r}")
            arr = np.asarray(golden[key])
            if arr.dtype.hasobject:
                raise BundleError(f"{where}: array {key!r} has dtype {arr.dtype}; object arrays would need pickle")
            info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = _ZIP_UNIX
            info.external_attr = _ZIP_FILE_MODE
            with zf.open(info, "w", force_zip64=True) as fh:  # zip64 always, as numpy does (gh-10776)
                np.lib.format.write_array(fh, arr, allow_pickle=False)
    return buf.getvalue()


def _file_entry(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _manifest(files: Mapping[str, dict], kind: BundleKind = MODEL_BUNDLE) -> dict:
    return {"format": kind.format, "version": BUNDLE_VERSION, "files": {k: files[k] for k in sorted(files)}}


# ---------------------------------------------------------------------------------------------
# Paths and low-level I/O
# ---------------------------------------------------------------------------------------------


#: the journal of an ``add_files`` that is committing: its new manifest, the staged files to move in and
#: the files to delete. Written atomically before the first move; whoever opens the bundle next finishes it.
JOURNAL = ".pending.json"


def _is_staging(name: str) -> bool:
    """A staged file's name (``.NAME.RANDOM.tmp``): never a bundle file, ignored by verification."""
    return name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3


def _relpath_problem(rel: Any) -> str | None:
    """Why ``rel`` is not a bundle-relative POSIX path that stays inside the bundle (None if it is fine)."""
    if not isinstance(rel, str) or not rel:
        return f"file names must be non-empty strings, got {rel!r}"
    bad = (
        rel.startswith("/")
        or "\\" in rel
        or "\x00" in rel
        or (len(rel) > 1 and rel[1] == ":")  # C:… on Windows
        or any(part in ("", ".", "..") for part in rel.split("/"))
    )
    if bad:
        return f"{rel!r} is not a plain relative path inside the bundle (no '..', no absolute paths, '/' separators)"
    if rel == JOURNAL or _is_staging(rel.rsplit("/", 1)[-1]):
        return f"{rel!r} is a name edgeintent keeps for files it is writing"
    return None


def _check_relpath(rel: Any, where: str) -> str:
    problem = _relpath_problem(rel)
    if problem:
        raise BundleError(f"{where}: {problem}")
    return rel


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """An exclusive advisory lock on the bundle directory (so two add_files calls do not lose an update)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def write_bundle(
    path: str | Path,
    config: dict,
    weights: Mapping[str, Any],
    spec: FeatureSpec,
    golden: Mapping[str, Any],
    metrics: dict,
    extra_files: Mapping[str, bytes] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a complete bundle at ``path`` atomically and return ``path``.

    ``config`` is stored with a ``"versions"`` entry set to :func:`environment_versions` (the
    writer's, replacing any the caller passed). ``weights`` may hold numpy arrays or torch tensors.
    ``extra_files`` maps bundle-relative paths (e.g. ``"exports/onnx/model.onnx"``) to bytes.
    """
    name = str(path)
    # Serialise everything first: bad inputs fail before anything touches the disk (write_files).
    if not isinstance(config, dict) or not isinstance(metrics, dict):
        raise BundleError(f"{name}: config and metrics must be dicts")
    if not isinstance(spec, FeatureSpec):
        raise BundleError(f"{name}: spec must be a FeatureSpec, got {type(spec).__name__}")
    contents: dict[str, bytes] = {
        CONFIG: canonical_json({**config, "versions": environment_versions()}, f"{name}: {CONFIG}"),
        WEIGHTS: weights_bytes(weights, f"{name}: {WEIGHTS}"),
        SPEC: spec.dumps().encode("utf-8"),
        GOLDEN: golden_bytes(golden, f"{name}: {GOLDEN}"),
        METRICS: canonical_json(metrics, f"{name}: {METRICS}"),
    }
    for rel, data in (extra_files or {}).items():
        _check_relpath(rel, name)
        if rel in contents or rel == MANIFEST:
            raise BundleError(f"{name}: extra file {rel} would replace a core bundle file")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise BundleError(f"{name}: extra file {rel} must be bytes, got {type(data).__name__}")
        contents[rel] = bytes(data)
    return write_files(path, contents, MODEL_BUNDLE, overwrite)


def write_files(path: str | Path, contents: Mapping[str, bytes], kind: BundleKind = MODEL_BUNDLE,
                overwrite: bool = False) -> Path:
    """Write ``contents`` (bundle-relative path → bytes, the kind's core files among them) and their
    manifest as a verified directory at ``path``, atomically (a temp directory renamed into place)."""
    path = Path(path)
    name = str(path)
    target = path.absolute()
    if target.name in ("", ".", ".."):
        raise BundleError(f"{name}: not a usable bundle path; give a directory name such as out/bundle")
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise BundleError(f"{name}: already exists; pass overwrite=True (CLI: --overwrite) to replace it")
        if target.is_symlink() or not target.is_dir():
            raise BundleError(f"{name}: exists and is not a bundle directory; refusing to replace it")
        if not (target / MANIFEST).is_file() and any(target.iterdir()):
            raise BundleError(f"{name}: exists and is not a bundle (no {MANIFEST}); refusing to replace it")
    missing = [c for c in kind.core if c not in contents]
    if missing:
        raise BundleError(f"{name}: a {kind.format} needs {', '.join(missing)}")
    for rel in contents:
        _check_relpath(rel, name)
    contents = dict(contents)
    manifest = _manifest({rel: _file_entry(data) for rel, data in contents.items()}, kind)
    contents[MANIFEST] = canonical_json(manifest, f"{name}: {MANIFEST}")

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise BundleError(f"{name}: cannot create the bundle directory ({exc.strerror or exc})") from None
    try:
        os.chmod(tmp, default_mode(0o777))  # mkdtemp makes it 0700
        for rel in sorted(contents, key=lambda r: r == MANIFEST):  # manifest last
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            _write_file(dest, contents[rel])
        for d in sorted({(tmp / rel).parent for rel in contents}, key=lambda p: -len(p.parts)):
            _fsync_dir(d)
        _install(tmp, target, name, overwrite)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BundleError(f"{name}: could not write the bundle ({exc.strerror or exc})") from None
        raise
    return path


def _install(tmp: Path, target: Path, name: str, overwrite: bool) -> None:
    """Rename the finished temp directory into place (moving an old bundle aside first if allowed)."""
    if not (target.exists() or target.is_symlink()):
        try:
            os.rename(tmp, target)
        except OSError:
            if target.exists() and not overwrite:
                raise BundleError(f"{name}: appeared while the bundle was being written; not replacing it") from None
            raise
        _fsync_dir(target.parent)
        return
    if not overwrite:  # created by someone else while we were writing
        raise BundleError(f"{name}: appeared while the bundle was being written; not replacing it")
    aside = target.parent / f".{target.name}.old-{secrets.token_hex(6)}"
    os.rename(target, aside)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(aside, target)  # put the old bundle back
        raise
    _fsync_dir(target.parent)
    shutil.rmtree(aside, ignore_errors=True)


def add_files(path: str | Path, files: Mapping[str, bytes], replace: tuple[str, ...] = (),
              kind: BundleKind = MODEL_BUNDLE, remove: Collection[str] = ()) -> None:
    """Add (or replace non-core) files, e.g. ``{"exports/onnx/model.onnx": data}``, and remove others,
    updating the manifest in one commit.

    ``replace`` names directories (e.g. ``"exports/coreml/model.mlpackage"``) whose listed files are all
    replaced: those not in ``files`` are dropped from the manifest and deleted, so a re-exported
    directory artifact keeps no stale file of the previous export.

    ``remove`` names files or directories of the bundle (e.g. an artifact a stage no longer installs and
    its ``.meta.json``): their listed files that are not in ``files`` are dropped from the manifest and
    deleted in the same commit. Each must name at least one listed file; core files cannot be removed.

    The bundle is verified first, so a modified bundle is never re-blessed by a new manifest. New
    files are written under temp names, renamed in, ``manifest.json`` is replaced, and only then are
    the stale files deleted (a journal lets the next open finish a commit that was interrupted).
    """
    name = str(path)
    root = Path(path).absolute()  # staged temp files are absolute; their journal entries are relative to root
    remove = tuple(remove)
    if not files and not remove:
        _verify(root, kind=kind)
        return
    for rel in replace:
        _check_relpath(rel, f"{name}: add_files")
        if not any(f.startswith(rel + "/") for f in files):
            raise BundleError(f"{name}: add_files would empty {rel}; pass its new files")
    for rel in remove:
        _check_relpath(rel, f"{name}: add_files")
        if rel == MANIFEST or rel in kind.core:
            raise BundleError(f"{name}: add_files cannot remove {rel}; every bundle has it")
    for rel, data in files.items():
        _check_relpath(rel, f"{name}: add_files")
        if rel == MANIFEST or rel in kind.core:
            raise BundleError(f"{name}: add_files cannot replace {rel}; write a new bundle instead")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise BundleError(f"{name}: add_files needs bytes for {rel}, got {type(data).__name__}")
    rels = sorted(files)
    for a, b in zip(rels, rels[1:], strict=False):
        if b.startswith(a + "/"):
            raise BundleError(f"{name}: add_files got both {a} and {b}; a file cannot also be a directory")

    if not root.is_dir():
        _verify(root, kind=kind)  # raises the precise error (missing, not a directory)
    _recover(root, name)
    with _locked(root):
        manifest, _ = _verify(root, recover=False, kind=kind)  # again under the lock: another writer may have just finished
        _clear_staging(root)
        listed = manifest["files"]
        for rel in remove:
            if not any(f == rel or f.startswith(rel + "/") for f in listed):
                raise BundleError(f"{name}: cannot remove {rel}: the bundle holds no such file or directory")
        for rel in rels:
            parts = rel.split("/")
            for i in range(1, len(parts)):
                prefix = "/".join(parts[:i])
                if prefix in listed or (root / prefix).is_file():
                    raise BundleError(f"{name}: cannot add {rel}: {prefix} is a file in the bundle")
            if (root / rel).is_dir():
                raise BundleError(f"{name}: cannot add {rel}: it is a directory in the bundle")

        staged: list[tuple[Path, Path]] = []
        try:
            for rel in rels:
                dest = root / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
                os.close(fd)
                staged.append((Path(tmp_name), dest))
                _write_file(Path(tmp_name), bytes(files[rel]))
                os.chmod(tmp_name, default_mode(0o666))
        except BaseException as exc:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise BundleError(f"{name}: could not add files ({exc.strerror or exc}); the bundle is unchanged") from None
            raise

        stale = sorted(f for f in listed if f not in files and (any(f.startswith(d + "/") for d in replace)
                                                                  or any(f == d or f.startswith(d + "/") for d in remove)))
        new_files = {k: v for k, v in listed.items() if k not in stale}
        for rel in rels:
            new_files[rel] = _file_entry(bytes(files[rel]))
        new_manifest = _manifest(new_files, kind)
        journal = {"manifest": new_manifest, "moves": [[tmp.relative_to(root).as_posix(), dest.relative_to(root).as_posix()]
                                                      for tmp, dest in staged], "delete": stale}  # fmt: skip
        try:
            _atomic_bytes(root / JOURNAL, canonical_json(journal, f"{name}: {JOURNAL}"))
        except BaseException as exc:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise BundleError(f"{name}: could not add files ({exc.strerror or exc}); the bundle is unchanged") from None
            raise
        try:
            _roll_forward(root, journal)
        except OSError as exc:
            raise BundleError(
                f"{name}: could not finish adding files ({exc.strerror or exc}); the next open of the bundle finishes it"
            ) from None


def remove_files(path: str | Path, remove: Collection[str], kind: BundleKind = MODEL_BUNDLE) -> None:
    """Remove files or directories (every listed file under them) from a bundle: :func:`add_files` with
    nothing to add (verified first, one journalled commit, the manifest replaced before anything is deleted)."""
    add_files(path, {}, remove=remove, kind=kind)


def _atomic_bytes(path: Path, data: bytes) -> None:
    """``io.atomic_path`` with the file and its directory synced (the journal and the manifest)."""
    with atomic_path(path) as tmp:
        _write_file(tmp, data)
    _fsync_dir(path.parent)


def _roll_forward(root: Path, journal: dict) -> None:
    """Finish a journalled commit (idempotent: a move already done is skipped): move the staged files
    in, replace the manifest, delete the stale files, drop the journal."""
    for tmp_rel, dest_rel in journal["moves"]:
        tmp = root / tmp_rel
        if tmp.exists():
            os.replace(tmp, root / dest_rel)
    for d in sorted({(root / dest).parent for _, dest in journal["moves"]}, key=lambda p: -len(p.parts)):
        _fsync_dir(d)
    _atomic_bytes(root / MANIFEST, canonical_json(journal["manifest"], f"{root}: {MANIFEST}"))
    for rel in journal["delete"]:
        (root / rel).unlink(missing_ok=True)
    for d in sorted({(root / rel).parent for rel in journal["delete"]}, key=lambda p: -len(p.parts)):
        while d != root and d.is_dir() and not any(d.iterdir()):  # directories the stale files leave empty
            d.rmdir()
            d = d.parent
    (root / JOURNAL).unlink(missing_ok=True)
    _fsync_dir(root)


def _recover(root: Path, name: str) -> None:
    """Finish an ``add_files`` that was interrupted after its journal was written (under the lock)."""
    if not (root / JOURNAL).is_file():
        return
    try:
        with _locked(root):
            if not (root / JOURNAL).is_file():
                return  # the writer finished while we waited for the lock
            try:
                journal = json.loads((root / JOURNAL).read_bytes())
                moves, delete = journal["moves"], journal["delete"]
                ok = isinstance(journal["manifest"], dict) and all(
                    isinstance(m, list) and len(m) == 2 and not _relpath_problem(m[1]) and isinstance(m[0], str)
                    and Path(m[0]).parent == Path(m[1]).parent and _is_staging(Path(m[0]).name) for m in moves
                ) and all(not _relpath_problem(r) for r in delete)  # fmt: skip
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                raise BundleError(f"{name}: {JOURNAL} is malformed; the bundle was modified after it was written")
            _roll_forward(root, journal)
    except OSError as exc:
        raise BundleError(
            f"{name}: an interrupted write left {JOURNAL} and finishing it failed ({exc.strerror or exc}); "
            "open the bundle once with write access"
        ) from None


def _clear_staging(root: Path) -> None:
    """Remove files staged by an ``add_files`` killed before its journal (under the lock)."""
    for dirpath, _, filenames in os.walk(root, followlinks=False):
        for f in filenames:
            if _is_staging(f):
                (Path(dirpath) / f).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Verifying and loading
# ---------------------------------------------------------------------------------------------


def _read_manifest(root: Path, name: str, kind: BundleKind = MODEL_BUNDLE) -> dict:
    mpath = root / MANIFEST
    if not mpath.is_file() or mpath.is_symlink():
        raise BundleError(f"{name}: {MANIFEST} is missing; this is not a bundle, or writing it did not finish")
    try:
        manifest = json.loads(mpath.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{name}: {MANIFEST} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise BundleError(f"{name}: cannot read {MANIFEST} ({exc.strerror or exc})") from None

    def malformed(why: str) -> BundleError:
        return BundleError(f"{name}: {MANIFEST} is malformed ({why})")

    if not isinstance(manifest, dict) or manifest.get("format") != kind.format:
        raise malformed(f"expected an object with \"format\": \"{kind.format}\"")
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise malformed("no integer \"version\"")
    if version != BUNDLE_VERSION:
        raise BundleError(
            f"{name}: bundle version {version} is not supported (this edgeintent reads version {BUNDLE_VERSION})"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise malformed("\"files\" must be an object")
    for rel, entry in files.items():
        problem = _relpath_problem(rel)
        if problem:
            raise malformed(problem)
        if rel == MANIFEST:
            raise malformed("it lists itself")
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or len(entry["sha256"]) != 64
            or any(c not in "0123456789abcdef" for c in entry["sha256"])
            or not isinstance(entry.get("size"), int)
            or isinstance(entry.get("size"), bool)
            or entry["size"] < 0
        ):
            raise malformed(f"the entry of {rel} needs \"sha256\" (64 hex digits) and \"size\" (bytes)")
    for core in kind.core:
        if core not in files:
            raise BundleError(f"{name}: {MANIFEST} does not list {core}; the bundle is incomplete")
    return manifest


def _present_files(root: Path, name: str) -> set[str]:
    """Every regular file under ``root`` as a POSIX relative path; symlinks and special files are refused."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for d in dirnames:
            if (here / d).is_symlink():
                rel = (here / d).relative_to(root).as_posix()
                raise BundleError(f"{name}: {rel} is a symbolic link; a bundle holds regular files only")
        for f in filenames:
            p = here / f
            rel = p.relative_to(root).as_posix()
            if _is_staging(f) and p.is_file() and not p.is_symlink():
                continue  # staged by a writer that is running or was killed before its journal
            if p.is_symlink() or not p.is_file():
                raise BundleError(f"{name}: {rel} is a symbolic link or special file; a bundle holds regular files only")
            found.add(rel)
    return found


def _verify(path: str | Path, read: Collection[str] = (), recover: bool = True,
            kind: BundleKind = MODEL_BUNDLE) -> tuple[dict, dict[str, bytes]]:
    """Verify the bundle (first finishing an interrupted ``add_files``, unless ``recover`` is False);
    return its manifest and the bytes of the files in ``read`` (the bytes that were hashed)."""
    root = Path(path)
    name = str(path)
    if not root.exists():
        raise BundleError(f"{name}: no such bundle (the directory does not exist)")
    if not root.is_dir():
        raise BundleError(f"{name}: not a bundle (a bundle is a directory, this is a file)")
    if recover:
        _recover(root, name)
    manifest = _read_manifest(root, name, kind)
    listed: dict[str, dict] = manifest["files"]
    present = _present_files(root, name)

    problems: list[str] = []
    for rel in sorted(listed):
        if rel not in present:
            problems.append(f"{rel} is listed in {MANIFEST} but missing; the bundle is incomplete")
    for rel in sorted(present - set(listed) - {MANIFEST}):
        problems.append(
            f"{rel} is not listed in {MANIFEST}; the bundle was modified after it was written "
            "(files are added with add_files)"
        )
    data: dict[str, bytes] = {}
    for rel in sorted(set(listed) & present):
        try:
            if rel in read:
                blob = (root / rel).read_bytes()
                digest, size = hashlib.sha256(blob).hexdigest(), len(blob)
                data[rel] = blob
            else:
                digest, size = _sha256_file(root / rel)
        except OSError as exc:
            problems.append(f"{rel} cannot be read ({exc.strerror or exc})")
            continue
        want = listed[rel]
        if size != want["size"]:
            problems.append(
                f"{rel} does not match {MANIFEST} (size {size} bytes, expected {want['size']}); "
                "the bundle was modified after it was written"
            )
        elif digest != want["sha256"]:
            problems.append(
                f"{rel} does not match {MANIFEST} (sha256 {digest[:12]}…, expected {want['sha256'][:12]}…); "
                "the bundle was modified after it was written"
            )
    if problems:
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise BundleError(f"{name}: {problems[0]}{more}")
    return manifest, data


def verify_files(path: str | Path, kind: BundleKind, read: Collection[str] = ()) -> tuple[dict, dict[str, bytes]]:
    """Verify a directory of ``kind`` (finishing an interrupted ``add_files``); return its manifest and the
    bytes of the files in ``read`` (the bytes that were hashed)."""
    return _verify(path, read, kind=kind)


def verify_bundle(path: str | Path) -> dict:
    """Check every file against ``manifest.json``; return the manifest or raise :class:`BundleError`."""
    manifest, _ = _verify(path)
    return manifest


def _json_file(name: str, rel: str, blob: bytes) -> dict:
    try:
        obj = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{name}: {rel} is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise BundleError(f"{name}: {rel} must hold a JSON object, not {type(obj).__name__}")
    return obj


def load_bundle(path: str | Path) -> Bundle:
    """Verify, then load a bundle (no pickle anywhere: JSON, safetensors, ``.npy`` without pickle)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as load_safetensors

    name = str(path)
    manifest, blobs = _verify(path, read=CORE_FILES)
    config = _json_file(name, CONFIG, blobs[CONFIG])
    metrics = _json_file(name, METRICS, blobs[METRICS])
    try:
        spec = FeatureSpec.from_json(_json_file(name, SPEC, blobs[SPEC]), source=f"{name}/{SPEC}")
    except SpecError as exc:
        raise BundleError(str(exc)) from None
    try:
        # copies: safetensors returns read-only views of the file's bytes, torch.from_numpy warns on those
        weights = {k: np.array(v) for k, v in load_safetensors(blobs[WEIGHTS]).items()}
    except (SafetensorError, ValueError, TypeError) as exc:
        raise BundleError(f"{name}: {WEIGHTS} is not a readable safetensors file ({exc})") from None
    try:
        with np.load(io.BytesIO(blobs[GOLDEN]), allow_pickle=False) as z:
            golden = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise BundleError(f"{name}: {GOLDEN} is not a readable .npz without pickle ({exc})") from None
    return Bundle(
        path=Path(path),
        config=config,
        weights=weights,
        spec=spec,
        golden=golden,
        metrics=metrics,
        manifest=manifest,
    )


__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "CORE_FILES",
    "Bundle",
    "add_files",
    "environment_versions",
    "golden_bytes",
    "load_bundle",
    "remove_files",
    "verify_bundle",
    "weights_bytes",
    "write_bundle",
]


def load_model(bundle):
    """Rebuild the model of a loaded bundle (no pickle: config + safetensors / numeric state)."""
    import torch

    from edgeintent.toolkit.models import get_entry, rebuild_model

    try:
        cfg = bundle.config["model"]
        entry = get_entry(cfg["name"])
        model = rebuild_model(cfg, bundle.spec) if entry.kind == "torch" else None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # config.json is data: any of these is a bad one
        raise BundleError(f"{bundle.path}: {CONFIG} does not describe a model this edgeintent builds ({type(exc).__name__}: {exc})") from None
    if entry.kind == "torch":
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bundle.weights.items()}
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:  # weights from another version of the model
            first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            raise BundleError(f"{bundle.path}: the weights do not fit model {cfg['name']!r} as configured ({first})") from None
        model.eval()
        return model
    try:
        model = entry.factory.from_state(cfg, bundle.weights, bundle.spec)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{bundle.path}: {CONFIG} and the weights do not describe a {cfg['name']} model ({type(exc).__name__}: {exc})") from None
    model.registry_name = cfg["name"]
    return model
