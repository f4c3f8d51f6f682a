"""Export targets: ``@register_target("onnx")`` and export into a bundle.

A target is one module with a :class:`Target` subclass: it writes an artifact for a torch model
(``export``) and says which runtime runs such an artifact and how (``runtime_for``). ``export_bundle``
puts the artifact under ``BUNDLE/exports/<target>/`` with a ``.meta.json`` beside it (signature,
precision, tool versions: an :class:`ArtifactMeta`) and records both in the bundle manifest.

Importing this package imports neither torch nor a converter: a target imports what it needs when
it exports. The capability table that joins targets and quantization recipes lives one floor up
(``edgeintent.quantization.capabilities``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgeintent.errors import BundleError, ConfigError, ExportError, shown
from edgeintent.registry import Registry
from edgeintent.runtimes import RUNTIMES, Artifact, Session, open_artifact
from edgeintent.toolkit.models.signature import InputSpec

TARGETS: Registry[Target] = Registry("target", modules=tuple(f"{__name__}.{m}" for m in ("onnx", "coreml", "mnn", "kit", "executorch", "litert")))

PRECISIONS = ("fp32", "fp16")  # quantization recipes add modes such as dynamic-int8


@dataclass(frozen=True)
class ArtifactMeta:
    """What ``BUNDLE/exports/<target>/<artifact>.meta.json`` records about one exported artifact.

    ``extra`` holds what a target or recipe adds (``opset``, ``converter_flags``, ``mnn_api``,
    ``mnn_precision``, ``quantize_report`` …); the JSON file keeps every key at the top level.
    """

    target: str
    precision: str
    artifact: str  # the artifact's path inside the bundle
    model: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    bytes: int
    versions: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    _FIELDS = ("target", "precision", "artifact", "model", "inputs", "outputs", "bytes", "versions")

    @classmethod
    def from_json(cls, d: dict) -> ArtifactMeta:
        """The metadata from its JSON, each field's type checked (a ValueError names the first bad one)."""
        if not isinstance(d, dict):
            raise ValueError(f"artifact metadata is a JSON object, not {type(d).__name__}")

        def typed(key: str, kind: type, default=None):
            v = d.get(key, default)
            if not isinstance(v, kind) or isinstance(v, bool):
                raise ValueError(f"{key!r} must be a {kind.__name__}, got {shown(v)}")
            return v

        def names(v, what: str) -> tuple[str, ...]:
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"{what} must be a list of names, got {shown(v)}")
            return tuple(v)

        inputs = []
        for i in typed("inputs", list, []):
            if not isinstance(i, dict) or not isinstance(i.get("name"), str) or i.get("dtype") not in ("int64", "float32"):
                raise ValueError(f"an input needs a name and a dtype int64 or float32, got {shown(i)}")
            dims = i.get("dims", [])
            if not isinstance(dims, list) or not all(isinstance(x, str) or (isinstance(x, int) and not isinstance(x, bool) and x > 0) for x in dims):
                raise ValueError(f"input {i['name']!r}: dims must be positive integers or names, got {shown(dims)}")
            inputs.append(InputSpec(i["name"], i["dtype"], tuple(dims)))
        size = typed("bytes", int, 0)
        if size < 0:
            raise ValueError(f"'bytes' must be ≥ 0, got {size}")
        return cls(typed("target", str), typed("precision", str), typed("artifact", str), typed("model", str, ""),
                   tuple(inputs), names(d.get("outputs", []), "'outputs'"), size, dict(typed("versions", dict, {})),
                   {k: v for k, v in d.items() if k not in cls._FIELDS})  # fmt: skip

    def to_json(self) -> dict:
        return {"target": self.target, "precision": self.precision, "artifact": self.artifact, "model": self.model,
                "inputs": [i.as_dict() for i in self.inputs], "outputs": list(self.outputs), "bytes": self.bytes,
                "versions": dict(self.versions), **self.extra}  # fmt: skip

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    @property
    def quantize_report(self) -> dict | None:
        return self.extra.get("quantize_report")


class Target:
    """One export target. Subclasses set the capability attributes and implement the methods."""

    name: str = ""
    extension: str = ""
    precisions: tuple[str, ...] = ("fp32",)
    dynamic_batch: bool = True
    dynamic_length: bool = True
    runtime: str = ""  # what runs the artifacts, in words (the capability table)
    runtimes: tuple[str, ...] = ()  # the RUNTIMES names its artifacts may run in
    notes: str = ""
    requires: tuple[str, ...] = ()  # importable modules the target needs to export
    options: tuple[str, ...] = ()  # keyword options of ``export`` (``edgeintent export --set KEY=VALUE``)
    #: "model": an exported model run in a runtime; "featurizer": the phone kit, whose ``export`` also gets
    #: the bundle (for the raw golden events) and whose ``check(bundle, meta, device)`` parity calls (or
    #: skips, saying why, when ``unchecked(bundle)`` gives a reason)
    kind: str = "model"

    def missing(self) -> str | None:
        """Why this target cannot export here (a package is missing), or None."""
        import importlib.util

        absent = [m for m in self.requires if importlib.util.find_spec(m) is None]
        return f"{', '.join(absent)} not installed" if absent else None

    def run_missing(self) -> str | None:
        """Why its artifacts cannot run here, or None."""
        return RUNTIMES.get(self.runtimes[0]).available() if self.runtimes else "no runtime"

    def why_not_on(self, provider) -> str | None:
        """Why ``provider`` (a parity device) cannot run this target's artifacts, or None."""
        reasons = [provider.supports(r) for r in self.runtimes]
        return None if any(r is None for r in reasons) else (reasons[0] if reasons else "no runtime")

    def artifact_name(self, precision: str) -> str:
        return f"model{'' if precision == 'fp32' else '.' + precision}{self.extension}"

    def export(self, model, spec, samples, out: Path, precision: str) -> dict:  # pragma: no cover - interface
        """Write the artifact to ``out`` (a file or a directory); return extra metadata."""
        raise NotImplementedError

    def runtime_for(self, meta: ArtifactMeta) -> tuple[str, str]:
        """``(runtime name, runtime precision)`` an artifact of this target runs with."""
        return self.runtimes[0], meta.precision

    def artifact(self, path: Path, meta: ArtifactMeta) -> Artifact:
        """The artifact at ``path`` as its runtime opens it."""
        runtime, precision = self.runtime_for(meta)
        return Artifact(runtime, str(path), precision, meta.input_names, meta.outputs, target=self.name)


def register_target(name: str) -> Callable[[type[Target]], type[Target]]:
    def deco(cls: type[Target]) -> type[Target]:
        cls.name = name
        TARGETS.register(name, cls())
        return cls

    return deco


def list_targets(kind: str | None = None) -> list[str]:
    """Every target's name, or only those of ``kind`` ("model" or "featurizer")."""
    return [n for n in TARGETS.names() if kind is None or TARGETS.get(n).kind == kind]


def get_target(name: str) -> Target:
    return TARGETS.get(name, extra=("all",))


def parse_targets(text: str, precision: str | None = None) -> list[str]:
    """``"all"`` or a comma list of target names, validated. With ``precision``, ``all`` means every target
    that exports that precision (the kit has none but fp32)."""
    if text.strip() == "all":
        names = [n for n in list_targets() if precision is None or precision in TARGETS.get(n).precisions]
    else:
        names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError(f"no target given; use {', '.join(list_targets())} or all")
    for n in names:
        get_target(n)
    return names


def _read_tree(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": path.read_bytes()}
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def artifact_files(out: Path, rel: str) -> dict[str, bytes]:
    """An artifact written at ``out`` (a file, or a directory such as CoreML's .mlpackage) as bundle files
    under ``rel`` (e.g. ``exports/onnx/model.onnx``): what ``add_files`` takes."""
    return {(rel if k == "" else f"{rel}/{k}"): v for k, v in _read_tree(out).items()}


def export_bundle(bundle_dir, target: str, precision: str = "fp32", options: dict | None = None) -> ArtifactMeta:
    """Export the bundle's model to ``target`` into ``bundle/exports/<target>/``; returns the metadata."""
    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.models.exportable import torch_model

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
    for pkg in ("onnx", "onnxruntime", "coremltools", "MNN", "executorch", "litert"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def install_artifact(bundle, target: str, precision: str, model, options: dict | None = None,
                     build: Callable[[Path], dict] | None = None) -> ArtifactMeta:  # fmt: skip
    """Export ``model`` (normally the bundle's own) into ``bundle``'s slot for ``target``/``precision``.

    ``options`` are the target's export options (``Target.options``), e.g. ``{"rnn": "while-loop"}``
    for mnn. ``build(out) -> extra metadata`` writes the artifact instead of the target's own export
    (the quantization recipes use it). Tests pass a deliberately broken copy of the model here to
    check that parity catches it.
    """
    from edgeintent.toolkit.golden import golden_samples

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
            if t.kind == "featurizer":
                options["bundle"] = bundle
            extra = t.export(model, bundle.spec, golden_samples(bundle.golden), out, precision, **options)
        else:
            extra = build(out)
        return install_tree(bundle, target, precision, model, out, extra)


def tree_files(bundle, target: str, precision: str, model, out: Path, extra: dict) -> tuple[dict[str, bytes], ArtifactMeta, tuple[str, ...]]:
    """An artifact already written at ``out`` (file or directory) as the bundle files that record it:
    ``(files, meta, replace)`` for ``add_files`` (``replace`` names a directory artifact, which is replaced
    as a whole so no file of an earlier export stays)."""
    from edgeintent.io import canonical_json
    from edgeintent.toolkit.bundle import environment_versions

    name = get_target(target).artifact_name(precision)
    rel = f"exports/{target}/{name}"
    files = artifact_files(out, rel)
    sig = model.signature()
    meta = ArtifactMeta(target, precision, rel, bundle.config["model"]["name"], sig.inputs, sig.outputs,
                        sum(len(v) for v in files.values()), {**environment_versions(), **_tool_versions()}, dict(extra))  # fmt: skip
    files[f"{rel}.meta.json"] = canonical_json(meta.to_json())
    return files, meta, (rel,) if out.is_dir() else ()


def install_tree(bundle, target: str, precision: str, model, out: Path, extra: dict) -> ArtifactMeta:
    """Record an artifact already written at ``out`` (file or directory) in the bundle, with its meta."""
    from edgeintent.toolkit.bundle import add_files

    files, meta, replace = tree_files(bundle, target, precision, model, out, extra)
    add_files(bundle.path, files, replace=replace)
    return meta


def exported_artifacts(bundle, targets: list[str] | None = None) -> list[ArtifactMeta]:
    """The metadata of every artifact in a loaded bundle (optionally only these targets)."""
    metas = []
    for rel in bundle.files:
        if rel.startswith("exports/") and rel.endswith(".meta.json"):
            meta = _read_meta(bundle, rel)
            if targets is None or meta.target in targets:
                metas.append(meta)
    order = list_targets()
    return sorted(metas, key=lambda m: (order.index(m.target) if m.target in order else len(order),
                                        PRECISIONS.index(m.precision) if m.precision in PRECISIONS else 9))  # fmt: skip


def _read_meta(bundle, rel: str) -> ArtifactMeta:
    """One ``*.meta.json`` of a verified bundle, checked: a known target, and the artifact it names is
    the file (or directory) beside it, inside the bundle."""
    try:
        meta = ArtifactMeta.from_json(json.loads(bundle.file(rel).read_bytes()))
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise BundleError(f"{bundle.path}: {rel} is not valid artifact metadata ({exc})") from None
    if meta.target not in TARGETS:
        raise BundleError(f"{bundle.path}: {rel} names an unknown target {shown(meta.target)}")
    if f"{meta.artifact}.meta.json" != rel:
        raise BundleError(f"{bundle.path}: {rel} names the artifact {shown(meta.artifact)}, not the one beside it")
    if not any(f == meta.artifact or f.startswith(meta.artifact + "/") for f in bundle.files):
        raise BundleError(f"{bundle.path}: {rel} describes {meta.artifact}, which the bundle does not hold")
    return meta


def artifact_of(bundle, meta: ArtifactMeta) -> Artifact:
    """The bundle's artifact of ``meta`` as its runtime opens it."""
    return get_target(meta.target).artifact(Path(bundle.path) / meta.artifact, meta)


def load_runner(bundle, meta: ArtifactMeta, threads: int = 1) -> Session:
    """The artifact of ``meta`` in its runtime on this machine."""
    t = get_target(meta.target)
    why = t.run_missing()
    if why:
        raise ExportError(f"cannot run {meta.artifact}: {why}")
    return open_artifact(artifact_of(bundle, meta), threads=threads)
