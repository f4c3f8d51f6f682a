"""Export targets: ``@register_target("onnx")``, a capability table, and export into a bundle.

A target is one module with a :class:`Target` subclass: it writes an artifact for a torch model
(``export``) and runs one in the target's real runtime (``runner``). ``export_bundle`` puts the
artifact under ``BUNDLE/exports/<target>/`` with a ``.meta.json`` beside it (signature, precision,
tool versions) and records both in the bundle manifest.
"""

from __future__ import annotations

import importlib
import json
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeintent.errors import ConfigError
from edgeintent.exporters.common import ExportError, input_specs, output_names, torch_model

_MODULES = ("onnx", "coreml", "mnn")
_REGISTRY: dict[str, Target] = {}

PRECISIONS = ("fp32", "fp16")  # quantization recipes add modes such as dynamic-int8


class Runner:
    """A loaded artifact in its runtime: ``run(feeds) -> {output: array}``."""

    runtime: str = ""
    arch: str = platform.machine()
    inputs: list[str]
    outputs: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def require_inputs(self, feeds: dict[str, np.ndarray], what: str) -> None:
        """One-line ``ExportError`` naming the first input of the artifact that ``feeds`` lacks."""
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise ExportError(f"{what} artifact needs input {missing[0]!r}")


class Target:
    """One export target. Subclasses set the capability attributes and implement the methods."""

    name: str = ""
    extension: str = ""
    precisions: tuple[str, ...] = ("fp32",)
    dynamic_batch: bool = True
    dynamic_length: bool = True
    runtime: str = ""
    notes: str = ""
    requires: tuple[str, ...] = ()  # importable modules the target needs
    options: tuple[str, ...] = ()  # keyword options of ``export`` (``edgeintent export --set KEY=VALUE``)

    def missing(self) -> str | None:
        """Why this target cannot export here (a package is missing), or None."""
        import importlib.util

        absent = [m for m in self.requires if importlib.util.find_spec(m) is None]
        return f"{', '.join(absent)} not installed" if absent else None

    def run_missing(self) -> str | None:
        """Why artifacts cannot run here, or None."""
        return self.missing()

    def artifact_name(self, precision: str) -> str:
        return f"model{'' if precision == 'fp32' else '.' + precision}{self.extension}"

    def export(self, model, spec, samples, out: Path, precision: str) -> dict:  # pragma: no cover - interface
        """Write the artifact to ``out`` (a file or a directory); return extra metadata."""
        raise NotImplementedError

    def runner(self, path: Path, meta: dict, threads: int = 1) -> Runner:  # pragma: no cover - interface
        raise NotImplementedError


def register_target(name: str) -> Callable[[type[Target]], type[Target]]:
    def deco(cls: type[Target]) -> type[Target]:
        if name in _REGISTRY:
            raise ValueError(f"target {name!r} is already registered (by {type(_REGISTRY[name]).__qualname__})")
        cls.name = name
        _REGISTRY[name] = cls()
        return cls

    return deco


def _load_all() -> None:
    for mod in _MODULES:
        importlib.import_module(f"{__name__}.{mod}")


def list_targets() -> list[str]:
    _load_all()
    return list(_REGISTRY)


def get_target(name: str) -> Target:
    _load_all()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown target {name!r}; choose one of: {', '.join(_REGISTRY)}, all")
    return _REGISTRY[name]


def parse_targets(text: str) -> list[str]:
    """``"all"`` or a comma list of target names, validated."""
    names = list_targets() if text.strip() == "all" else [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError("no target given; use onnx, coreml, mnn or all")
    for n in names:
        get_target(n)
    return names


def capability_table() -> list[dict]:
    from edgeintent.quantization import recipes

    rows = []
    for name in list_targets():
        t = _REGISTRY[name]
        rows.append({
            "target": name, "extension": t.extension, "precisions": list(t.precisions),
            "dynamic_batch": t.dynamic_batch, "dynamic_length": t.dynamic_length,
            "quantization": [r.mode for r in recipes(name)], "runtime": t.runtime,
            "exports_here": t.missing() is None, "runs_here": t.run_missing() is None,
            "why_not": t.run_missing() or "", "notes": t.notes,
        })  # fmt: skip
    return rows


def _read_tree(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": path.read_bytes()}
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def export_bundle(bundle_dir, target: str, precision: str = "fp32", options: dict | None = None) -> dict:
    """Export the bundle's model to ``target`` into ``bundle/exports/<target>/``; returns the metadata."""
    from edgeintent.toolkit.bundle import load_bundle
    from edgeintent.toolkit.training.trainer import load_model

    t = get_target(target)
    if precision not in t.precisions:
        raise ConfigError(f"target {target} exports {', '.join(t.precisions)}, not {precision!r}")
    why = t.missing()
    if why:
        raise ExportError(f"cannot export to {target}: {why}")
    bundle = load_bundle(bundle_dir)
    return install_artifact(bundle, target, precision, torch_model(load_model(bundle)), options)


def _tool_versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for pkg in ("onnx", "onnxruntime", "coremltools", "MNN"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def install_artifact(bundle, target: str, precision: str, model, options: dict | None = None,
                     build: Callable[[Path], dict] | None = None) -> dict:  # fmt: skip
    """Export ``model`` (normally the bundle's own) into ``bundle``'s slot for ``target``/``precision``.

    ``options`` are the target's export options (``Target.options``), e.g. ``{"rnn": "while-loop"}``
    for mnn. ``build(out) -> extra metadata`` writes the artifact instead of the target's own export
    (the quantization recipes use it). Tests pass a deliberately broken copy of the model here to
    check that parity catches it.
    """
    from edgeintent.toolkit.training.trainer import golden_samples

    t = get_target(target)
    options = dict(options or {})
    unknown = sorted(set(options) - set(t.options))
    if unknown:
        known = ", ".join(t.options) or "none"
        raise ConfigError(f"target {target} has no export option {unknown[0]!r} (options: {known})")
    name = t.artifact_name(precision)
    with tempfile.TemporaryDirectory(prefix="edgeintent-export-") as tmp:
        out = Path(tmp) / name
        if build is None:
            extra = t.export(model, bundle.spec, golden_samples(bundle.golden), out, precision, **options)
        else:
            extra = build(out)
        return install_tree(bundle, target, precision, model, out, extra)


def install_tree(bundle, target: str, precision: str, model, out: Path, extra: dict) -> dict:
    """Record an artifact already written at ``out`` (file or directory) in the bundle, with its meta."""
    from edgeintent.toolkit.bundle import add_files, canonical_json, environment_versions

    name = get_target(target).artifact_name(precision)
    tree = _read_tree(out)
    rel = f"exports/{target}/{name}"
    files = {(rel if k == "" else f"{rel}/{k}"): v for k, v in tree.items()}
    meta = {
        "target": target,
        "precision": precision,
        "artifact": rel,
        "model": bundle.config["model"]["name"],
        "inputs": [{"name": s.name, "dtype": s.dtype, "dims": list(s.dims)} for s in input_specs(model, bundle.spec)],
        "outputs": output_names(model),
        "bytes": sum(len(v) for v in tree.values()),
        "versions": {**environment_versions(), **_tool_versions()},
        **extra,
    }
    files[f"{rel}.meta.json"] = canonical_json(meta)
    # a directory artifact (CoreML's .mlpackage) is replaced as a whole: no file of an earlier export stays
    add_files(bundle.path, files, replace=(rel,) if "" not in tree else ())
    return meta


def exported_artifacts(bundle, targets: list[str] | None = None) -> list[dict]:
    """The ``.meta.json`` of every artifact in a loaded bundle (optionally only these targets)."""
    metas = []
    for rel in bundle.files:
        if rel.startswith("exports/") and rel.endswith(".meta.json"):
            meta = json.loads(bundle.file(rel).read_bytes())
            if targets is None or meta["target"] in targets:
                metas.append(meta)
    order = list_targets()
    return sorted(metas, key=lambda m: (order.index(m["target"]) if m["target"] in order else len(order),
                                        PRECISIONS.index(m["precision"]) if m["precision"] in PRECISIONS else 9))  # fmt: skip


def load_runner(bundle, meta: dict, threads: int = 1) -> Runner:
    t = get_target(meta["target"])
    why = t.run_missing()
    if why:
        raise ExportError(f"cannot run {meta['artifact']}: {why}")
    return t.runner(Path(bundle.path) / meta["artifact"], meta, threads=threads)
