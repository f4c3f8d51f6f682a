"""Model registry: ``@register_model("dipn", ...)``; ``create_model(name, spec)``; ``list_models()``.

A registered model is either a torch module (``kind="torch"``: trained by ``train.py``, exported later)
or a scikit-learn style estimator (``kind="sklearn"``: the GBDT baseline). ``MODELS`` is an
:class:`edgeintent.registry.Registry` of :class:`ModelEntry`; the model modules (``dipn``, ``iidn``,
``rnn``, ``gbdt``, ``aitm``, ``find``) are imported on the first lookup and register their models. Registering a name
twice is an error (``ValueError``), like timm's and coremltools' registries. ``docs/models.md``
describes the models.

Every model accepts any subset of the streams its FeatureSpec has (``streams=``), so a model trained on
the cloud stream alone (Taobao) works with the other streams absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from edgeintent.errors import ConfigError
from edgeintent.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable
    kind: str  # "torch" or "sklearn"
    defaults: dict = field(default_factory=dict)
    tasks: tuple[str, ...] = ("buy_rt", "buy_long")
    description: str = ""
    #: options added after bundles were written, with the value such a bundle's model had
    legacy: dict = field(default_factory=dict)
    #: the module whose ``fit(model, prepared, cfg, on_epoch)`` trains this model instead of the trainer's
    #: supervised loop (e.g. ``find``'s self-supervised pretraining and alignment); None: the trainer's
    trainer: str | None = None


#: every registered model; the modules below register theirs when first looked up
MODELS: Registry[ModelEntry] = Registry(
    "model", modules=tuple(f"{__name__}.{m}" for m in ("dipn", "iidn", "rnn", "gbdt", "aitm", "find")), sort=True
)


def register_model(
    name: str,
    *,
    kind: str = "torch",
    tasks: tuple[str, ...] = ("buy_rt", "buy_long"),
    description: str = "",
    legacy: dict | None = None,
    trainer: str | None = None,
    **defaults,
) -> Callable:
    """Class/function decorator. ``defaults`` are the hyper-parameters this name stands for; ``legacy``
    maps an option added later to the value a bundle written without it was trained with."""

    def deco(factory: Callable) -> Callable:
        if kind not in ("torch", "sklearn"):
            raise ValueError(f"model kind must be 'torch' or 'sklearn', got {kind!r}")
        unknown = [k for k in legacy or {} if k not in defaults]
        if unknown:
            raise ValueError(f"model {name!r}: legacy option {unknown[0]!r} is not one of its options")
        # a name registered twice raises ValueError ("model 'x' is already registered")
        MODELS.register(name, ModelEntry(name, factory, kind, dict(defaults), tuple(tasks), description, dict(legacy or {}),
                                         trainer))  # fmt: skip
        return factory

    return deco


def list_models() -> list[str]:
    return MODELS.names()


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; a one-line ``ConfigError`` listing the choices if there is none."""
    return MODELS.get(name)


def create_model(name: str, spec, streams: tuple[str, ...] | None = None, tasks: tuple[str, ...] | None = None, **overrides):
    """Instantiate a registered model for ``spec`` (streams default to all the spec has)."""
    entry = get_entry(name)
    streams = tuple(streams or spec.streams)
    missing = [s for s in streams if s not in spec.streams]
    if missing:
        raise ConfigError(f"model {name!r}: the FeatureSpec has no stream {missing[0]!r} (it has {', '.join(spec.streams)})")
    if not streams:
        raise ConfigError(f"model {name!r} needs at least one stream")
    unknown = [k for k in overrides if k not in entry.defaults]
    if unknown:
        raise ConfigError(f"model {name!r} has no option {unknown[0]!r} (options: {', '.join(sorted(entry.defaults))})")
    hparams = {**entry.defaults, **overrides}
    model = entry.factory(spec=spec, streams=streams, tasks=tuple(tasks or entry.tasks), **hparams)
    model.registry_name = name
    return model


def model_config(model) -> dict:
    """What rebuilds ``model`` with ``create_model``: its registry name, streams, tasks and options."""
    cfg = dict(model.config())
    cfg["name"] = model.registry_name
    return cfg


def rebuild_model(config: dict, spec):
    """Inverse of :func:`model_config` (weights are loaded separately)."""
    cfg = dict(config)
    name = cfg.pop("name")
    streams = tuple(cfg.pop("streams"))
    tasks = tuple(cfg.pop("tasks"))
    entry = get_entry(name)
    options = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in entry.defaults}
    options = {**{k: v for k, v in entry.legacy.items() if k not in cfg}, **options}
    return create_model(name, spec, streams=streams, tasks=tasks, **options)


def describe_models(users: int = 500) -> list[dict]:
    """Every registered model with parameter count and weight bytes on a simulator FeatureSpec."""
    from edgeintent.toolkit.features import fit_spec
    from edgeintent.toolkit.data.simulator import SimConfig, simulate

    spec = fit_spec(simulate(SimConfig(users=users, seed=0)).events)
    rows = []
    for name in list_models():
        entry = get_entry(name)
        params = size = None
        if entry.kind == "torch":
            model = create_model(name, spec)
            params = sum(p.numel() for p in model.parameters())
            size = sum(p.numel() * p.element_size() for p in model.parameters())
        rows.append({"name": name, "kind": entry.kind, "tasks": list(entry.tasks), "parameters": params,
                     "weight_bytes": size, "description": entry.description})  # fmt: skip
    return rows
