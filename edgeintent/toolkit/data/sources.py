"""Data sources: every command that takes data accepts one of

- ``PATH``                      a long-format event file (.csv / .parquet / .jsonl)
- ``sim:USERS[:SEED]``          the built-in behaviour simulator (default data set)
- ``taobao:PATH``               the Tianchi UserBehavior CSV (cloud stream, real purchases)
- ``hmog:PATH``                 the HMOG folder (gesture stream, subject / task labels)

A source resolves to a :class:`Dataset`: the events, optionally the source's own decision points
(with whatever the source knows about them: coupon offers and potential outcomes for the simulator,
subject / task labels for HMOG), and the source's local-time offset (used for hour-of-day features).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from edgeintent.errors import SourceError
from edgeintent.toolkit.data.events import EventLog, read_events

DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@dataclass
class Dataset:
    """Events plus what the source knows about its decision points."""

    name: str
    events: EventLog
    #: ``user_id, t_ms`` plus source-specific columns, sorted by (user_id, t_ms); ``None`` means the
    #: default rule (right after every non-buy cloud event, see ``features.default_decision_points``).
    decisions: pa.Table | None = None
    #: Offset of the users' local time from UTC, for hour-of-day features (Taobao: +8 h).
    utc_offset_ms: int = 0
    meta: dict = field(default_factory=dict)


def sidecar_path(path: str | Path) -> Path:
    """Where ``data simulate`` writes the decision points next to an events file (``NAME.decisions.parquet``).

    The full file name is kept (``events.csv`` → ``events.csv.decisions.parquet``) so that events files
    of different formats in one folder never share a sidecar.
    """
    p = Path(path)
    return p.with_name(f"{p.name}.decisions.parquet")


def load_source(spec: str) -> Dataset:
    """Resolve a source spec (see the module docstring) to a :class:`Dataset`."""
    spec = spec.strip()
    if spec.startswith("sim:"):
        users, seed = _parse_sim(spec)
        from edgeintent.toolkit.data.simulator import SimConfig, simulate

        sim = simulate(SimConfig(users=users, seed=seed))
        return Dataset(name=spec, events=sim.events, decisions=sim.decisions, meta={"simulator": sim.config_dict()})
    if spec.startswith("taobao:"):
        from edgeintent.toolkit.data.taobao import load_taobao

        return load_taobao(_path_part(spec, "taobao"))
    if spec.startswith("hmog:"):
        from edgeintent.toolkit.data.hmog import load_hmog

        return load_hmog(_path_part(spec, "hmog"))
    if ":" in spec.split("/")[0] and not Path(spec).exists():
        raise SourceError(f"unknown data source {spec!r}; use a file path, sim:USERS[:SEED], taobao:PATH or hmog:PATH")
    events = read_events(spec)
    decisions = None
    side = sidecar_path(spec)
    if side.exists():
        import pyarrow.parquet as pq

        try:
            decisions = pq.read_table(side)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{side}: unreadable decision-point sidecar ({str(exc).splitlines()[0]})") from None
    return Dataset(name=str(spec), events=events, decisions=decisions)


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
