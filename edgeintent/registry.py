"""One small registry type for every registry of the toolkit (models, targets, quantization recipes,
runtimes, device profiles, policies, MIL kernels, data sources).

- ``register(name, obj)`` (or ``@registry.register(name)``) adds an entry; a name registered twice is
  a programming error (``ValueError``), as in timm's and coremltools' registries;
- ``get(name)`` returns it, or raises a one-line :class:`~edgeintent.errors.ConfigError` that lists
  the choices, so every unknown-name message reads the same;
- ``names()`` is what CLI choices and help strings are built from.

Registries whose entries live in modules of their own name those modules (``modules``); they are
imported on the first lookup, so importing a registry stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from edgeintent.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, *, modules: tuple[str, ...] = (), hint: str = "", sort: bool = False) -> None:
        self.kind = kind  # what one entry is called in messages ("model", "target", …)
        self.modules = modules  # imported on first lookup: their entries register themselves
        self.hint = hint  # appended to the unknown-name message, e.g. " (see `edgeintent devices`)"
        self.sort = sort  # names() sorted instead of in registration order
        self._entries: dict[str, T] = {}
        self._loaded = not modules

    def register(self, name: str, obj: T | None = None):
        """Add ``obj`` under ``name``; without ``obj``, a decorator that registers what it decorates."""
        if obj is None:

            def deco(o: T) -> T:
                self.register(name, o)
                return o

            return deco
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj
        return obj

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in self.modules:
                importlib.import_module(mod)

    def get(self, name: str, extra: tuple[str, ...] = ()) -> T:
        """The entry of ``name``; ``extra`` are further accepted words to list (e.g. ``all``)."""
        self._load()
        if name not in self._entries:
            choices = ", ".join([*self.names(), *extra])
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {choices}{self.hint}")
        return self._entries[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries) if self.sort else list(self._entries)

    def values(self) -> list[T]:
        return [self._entries[n] for n in self.names()]

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

