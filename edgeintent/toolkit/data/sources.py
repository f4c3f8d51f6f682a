"""Data sources: every command that takes data accepts one of

- ``PATH``                      a long-format event file (.csv / .parquet / .jsonl)
- ``sim:USERS[:SEED]``          the built-in behaviour simulator (default data set)
- ``simctx:USERS[:SEED]``       the simulator with city-hour weather thinning conversions per industry
- ``taobao:PATH``               the Tianchi UserBehavior CSV (cloud stream, real purchases)
- ``hmog:PATH``                 the HMOG folder (gesture stream, subject / task labels)

``SOURCES`` is the registry of these (``@register_source(scheme, help=...)``): a spec ``SCHEME:REST``
goes to the entry of ``SCHEME``; anything else is a file path (the fallback entry). :func:`source_help`
builds the one-line help text from the registry.

A source resolves to a :class:`~edgeintent.toolkit.data.dataset.Dataset`: the events, optionally the
source's own decision points (with whatever the source knows about them: coupon offers and potential
outcomes for the simulator, subject / task labels for HMOG), and the source's local-time offset (used
for hour-of-day features). Every bad spec raises :class:`~edgeintent.errors.SourceError` in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from edgeintent.errors import SourceError
from edgeintent.registry import Registry
from edgeintent.toolkit.data.dataset import Dataset
from edgeintent.toolkit.data.readers import read_events
from edgeintent.toolkit.data.schema import check_decisions

#: A loader gets the whole (stripped) spec, e.g. ``"sim:300:1"``, and returns the Dataset.
SourceLoader = Callable[[str], Dataset]


@dataclass(frozen=True)
class SourceEntry:
    """One kind of source: its scheme, how it is written in help texts, and its loader."""

    scheme: str
    help: str  # e.g. "sim:USERS[:SEED]"
    load: SourceLoader
    fallback: bool = False  # the entry for specs without a known scheme (plain files)


SOURCES: Registry[SourceEntry] = Registry("data source")


def register_source(scheme: str, *, help: str, fallback: bool = False) -> Callable[[SourceLoader], SourceLoader]:
    """Register the decorated loader for specs ``SCHEME:...`` (or, with ``fallback``, for plain paths)."""

    def deco(fn: SourceLoader) -> SourceLoader:
        SOURCES.register(scheme, SourceEntry(scheme=scheme, help=help, load=fn, fallback=fallback))
        return fn

    return deco


def load_source(spec: str) -> Dataset:
    """Resolve a source spec (see the module docstring) to a :class:`Dataset`."""
    spec = spec.strip()
    scheme, sep, _ = spec.partition(":")
    if sep and scheme in SOURCES and not SOURCES.get(scheme).fallback:
        return SOURCES.get(scheme).load(spec)
    if ":" in spec.split("/")[0] and not Path(spec).exists():
        raise SourceError(f"unknown data source {spec!r}; use {_choices('a file path')}")
    return _fallback().load(spec)


def source_help() -> str:
    """One line for CLI help: "a file (.csv/.parquet/.jsonl), sim:USERS[:SEED], taobao:PATH or hmog:PATH"."""
    return _choices(_fallback().help)


def sidecar_path(path: str | Path) -> Path:
    """Where ``data simulate`` writes the decision points next to an events file (``NAME.decisions.parquet``).

    The full file name is kept (``events.csv`` → ``events.csv.decisions.parquet``) so that events files
    of different formats in one folder never share a sidecar.
    """
    p = Path(path)
    return p.with_name(f"{p.name}.decisions.parquet")


def _fallback() -> SourceEntry:
    return next(e for e in SOURCES.values() if e.fallback)


def _choices(file_text: str) -> str:
    """``file_text`` then every scheme's help, as "a, b, c or d"."""
    words = [file_text, *(e.help for e in SOURCES.values() if not e.fallback)]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


# ---------------------------------------------------------------------------------------------
# The sources
# ---------------------------------------------------------------------------------------------


@register_source("file", help="a file (.csv/.parquet/.jsonl)", fallback=True)
def _load_file(spec: str) -> Dataset:
    """A long-format event file, with the simulator's decision-point sidecar if one lies next to it."""
    events = read_events(spec)
    decisions = None
    side = sidecar_path(spec)
    if side.exists():
        import pyarrow.parquet as pq

        try:
            decisions = pq.read_table(side)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{side}: unreadable decision-point sidecar ({str(exc).splitlines()[0]})") from None
        decisions = check_decisions(decisions, str(side))
    return Dataset(name=str(spec), events=events, decisions=decisions)


@register_source("sim", help="sim:USERS[:SEED]")
def _load_sim(spec: str) -> Dataset:
    users, seed = _parse_sim(spec)
    from edgeintent.toolkit.data.simulator import SimConfig, simulate

    sim = simulate(SimConfig(users=users, seed=seed))
    return Dataset(name=spec, events=sim.events, decisions=sim.decisions, meta={"simulator": sim.config_dict()})


@register_source("simctx", help="simctx:USERS[:SEED]")
def _load_simctx(spec: str) -> Dataset:
    """The simulator with the city-hour weather layer (``simulator/context.py``): conversions thinned by
    weather per industry; no decision points (their recorded outcomes would disagree with the thinned buys)."""
    try:
        users, seed = _parse_sim("sim" + spec[len("simctx"):])
    except SourceError as exc:
        raise SourceError(str(exc).replace("'sim", "'simctx").replace("sim:USERS", "simctx:USERS")) from None
    from edgeintent.toolkit.data.schema import EventLog
    from edgeintent.toolkit.data.simulator import SimConfig, simulate
    from edgeintent.toolkit.data.simulator.context import apply_context, context_meta

    sim = simulate(SimConfig(users=users, seed=seed))
    streams = dict(sim.events.streams)
    streams["cloud"] = apply_context(streams["cloud"], seed)
    events = EventLog(streams=streams, report=sim.events.report)
    return Dataset(name=spec, events=events, meta={"simulator": sim.config_dict(), "context": context_meta(seed)})


@register_source("taobao", help="taobao:PATH")
def _load_taobao(spec: str) -> Dataset:
    from edgeintent.toolkit.data.taobao import load_taobao

    return load_taobao(_path_part(spec, "taobao"))


@register_source("hmog", help="hmog:PATH")
def _load_hmog(spec: str) -> Dataset:
    from edgeintent.toolkit.data.hmog import load_hmog

    return load_hmog(_path_part(spec, "hmog"))


def _parse_sim(spec: str) -> tuple[int, int]:
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise SourceError(f"bad simulator source {spec!r}; expected sim:USERS or sim:USERS:SEED")
    try:
        users = int(parts[1])
        seed = int(parts[2]) if len(parts) == 3 else 0
    except ValueError:
        raise SourceError(f"bad simulator source {spec!r}; USERS and SEED must be integers") from None
    if users <= 0:
        raise SourceError(f"bad simulator source {spec!r}; USERS must be positive")
    return users, seed


def _path_part(spec: str, kind: str) -> Path:
    rest = spec.split(":", 1)[1]
    if not rest:
        raise SourceError(f"{kind}: source needs a path, e.g. {kind}:../shared/data/...")
    path = Path(rest)
    if not path.exists():
        raise SourceError(f"{kind}: {path} does not exist")
    return path
