"""Forecastable user-text pairs (FIND §4.1): one declarative template table per data source.

A user's *future* window (the events of (t, t + horizon]) becomes a sentence in a small template
language, e.g. ``users who will buy in category 4756105 and browse category 982926``; the user encoder
sees only the *past* window (before t). The same table says which data window a demand such as
``users who will buy in category 4756105`` refers to, so the ground truth of a demand, the history rule
(the same clause on the past window) and the training sentences all come from one place.

A table is keyed by the data source (``taobao``: the cloud stream only; ``sim``: the simulator's three
streams, so its sentences also name clicks and gestures). Each row (:class:`Template`) is a clause:

- ``stream`` / ``field`` / ``value``: which events it counts (e.g. cloud events whose action is ``buy``);
- ``slot``: the column whose values the clause names (``category_id``, ``widget``, ``kind``), or None for
  a clause about the count alone (``buy anything``);
- ``phrase``: the words, ``{}`` standing for the slot's value;
- ``min_count``: the events it takes (``add at least 3 items to the cart``).

The language is closed: a demand is ``users who will`` + clauses joined by ``and``. The text tower
(models/find.py) knows these words and the slot values it saw in training, nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from edgeintent.errors import ConfigError
from edgeintent.toolkit.data.schema import EventLog
from edgeintent.toolkit.features.values import column

PREFIX = "users who will"
JOIN = "and"
#: the clause of a future window without any event a template counts
IDLE = "do nothing"


@dataclass(frozen=True)
class Template:
    name: str
    stream: str
    field: str | None  # the column that selects the events (None: every event of the stream)
    value: str | None  # its value
    slot: str | None  # the column whose values the clause names, or None
    phrase: str  # "{}" is the slot's value
    min_count: int = 1

    def text(self, value: str | None = None) -> str:
        return self.phrase.format(value) if self.slot else self.phrase


@dataclass(frozen=True)
class TemplateTable:
    name: str
    templates: tuple[Template, ...]
    horizon_ms: int  # the future window a sentence describes
    window_ms: int  # the length of one pretraining window (contrastive forecasting steps)
    cycle_ms: int  # one cycle of the cyclic regulariser (a day)
    max_values: int = 4  # slot values per clause and window (the most frequent)

    def get(self, name: str) -> Template:
        for t in self.templates:
            if t.name == name:
                return t
        raise ConfigError(f"template table {self.name!r} has no template {name!r}")

    def words(self) -> list[str]:
        """Every fixed word of the language (slot values come from the data)."""
        out: list[str] = []
        for phrase in (PREFIX, JOIN, IDLE, *(t.phrase for t in self.templates)):
            for w in tokenize(phrase.replace("{}", "")):
                if w not in out:
                    out.append(w)
        return out


_H = 3_600_000
_CLOUD = (
    Template("buy", "cloud", "action", "buy", "category_id", "buy in category {}"),
    Template("cart", "cloud", "action", "cart", "category_id", "add to cart in category {}"),
    Template("fav", "cloud", "action", "fav", "category_id", "favourite category {}"),
    Template("browse", "cloud", "action", "view", "category_id", "browse category {}"),
    Template("buy_any", "cloud", "action", "buy", None, "buy anything"),
    Template("cart_many", "cloud", "action", "cart", None, "add at least 3 items to the cart", min_count=3),
)

#: the template tables, one per data source
TABLES: dict[str, TemplateTable] = {
    "taobao": TemplateTable("taobao", _CLOUD, horizon_ms=72 * _H, window_ms=6 * _H, cycle_ms=24 * _H),
    "sim": TemplateTable(
        "sim",
        _CLOUD + (
            Template("click", "click", None, None, "widget", "click {}"),
            Template("gesture", "gesture", None, None, "kind", "{} the screen", min_count=3),
        ),  # fmt: skip
        horizon_ms=_H,
        window_ms=_H // 6,
        cycle_ms=24 * _H,
    ),
}


def table_for(streams) -> TemplateTable:
    """The table of a model's streams: the simulator's when it reads clicks or gestures, else Taobao's."""
    return TABLES["sim"] if {"click", "gesture"} & set(streams) else TABLES["taobao"]


_SPLIT = re.compile(r"[\s,;.!?]+")


def tokenize(text: str) -> list[str]:
    """Lower-case words, split on white space and punctuation."""
    return [w for w in _SPLIT.split(text.strip().lower()) if w]


def sentence(table: TemplateTable, clauses: list[tuple[str, str | None]]) -> str:
    """``users who will`` + the clauses joined by ``and`` (``do nothing`` when there are none)."""
    parts = [table.get(name).text(value) for name, value in clauses] or [IDLE]
    return f"{PREFIX} " + f" {JOIN} ".join(parts)


def _value_strings(table: pa.Table, col: str) -> np.ndarray:
    """A column as numpy strings (dictionary columns decoded; float ids printed as integers)."""
    arr = table.column(col)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_floating(arr.type):
        arr = arr.cast(pa.int64())
    return np.asarray(arr.to_numpy(zero_copy_only=False)).astype(str)


class WindowIndex:
    """The events of each stream a table reads, sorted by (user, time), to cut windows from quickly."""

    def __init__(self, table: TemplateTable, log: EventLog) -> None:
        self.table = table
        self.streams: dict[str, dict[str, np.ndarray]] = {}
        for s in sorted({t.stream for t in table.templates}):
            ev = log.stream(s)
            if ev.num_rows == 0:
                continue
            user, ts = column(ev, "user_id").astype(np.int64), column(ev, "ts_ms").astype(np.int64)
            order = np.lexsort((ts, user))
            cols = {"user": user[order], "ts": ts[order]}
            for t in table.templates:
                if t.stream != s:
                    continue
                for c in (t.field, t.slot):
                    if c and c not in cols:
                        cols[c] = _value_strings(ev, c)[order]
            self.streams[s] = cols

    def _bounds(self, s: str, user: np.ndarray, lo_ms: np.ndarray, hi_ms: np.ndarray, last_n: int | None):
        """Per row, [a, b) of stream ``s``'s events of ``user`` with lo < ts ≤ hi (the last ``last_n`` of them)."""
        c = self.streams[s]
        u, ts = c["user"], c["ts"]
        first = np.searchsorted(u, user, "left")
        end = np.searchsorted(u, user, "right")
        a = np.empty(len(user), np.int64)
        b = np.empty(len(user), np.int64)
        for i in range(len(user)):  # per user: a slice of its sorted times
            seg = ts[first[i] : end[i]]
            a[i] = first[i] + np.searchsorted(seg, lo_ms[i], "right")
            b[i] = first[i] + np.searchsorted(seg, hi_ms[i], "right")
        if last_n is not None:
            a = np.maximum(a, b - last_n)
        return a, b

    def clauses(self, user: np.ndarray, lo_ms: np.ndarray, hi_ms: np.ndarray,
                last_n: dict[str, int] | None = None) -> list[list[tuple[str, str | None]]]:  # fmt: skip
        """Per row, the clauses that hold for the events of (lo, hi] (each stream's last ``last_n[s]``
        events of that window when given): (template name, slot value or None), most frequent values
        first, at most ``max_values`` values per template."""
        user, lo_ms, hi_ms = (np.asarray(v, np.int64) for v in (user, lo_ms, hi_ms))
        out: list[list[tuple[str, str | None]]] = [[] for _ in range(len(user))]
        for s, c in self.streams.items():
            a, b = self._bounds(s, user, lo_ms, hi_ms, (last_n or {}).get(s))
            temps = [t for t in self.table.templates if t.stream == s]
            for i in range(len(user)):
                if b[i] <= a[i]:
                    continue
                sl = slice(a[i], b[i])
                for t in temps:
                    sel = np.ones(b[i] - a[i], bool) if t.field is None else c[t.field][sl] == t.value
                    n = int(sel.sum())
                    if n < t.min_count:
                        continue
                    if t.slot is None:
                        out[i].append((t.name, None))
                        continue
                    vals, counts = np.unique(c[t.slot][sl][sel], return_counts=True)
                    keep = [v for v, k in zip(vals, counts) if k >= t.min_count]
                    keep.sort(key=lambda v: -counts[list(vals).index(v)])
                    out[i] += [(t.name, str(v)) for v in keep[: self.table.max_values]]
        return out

    def counts(self, clause: tuple[str, str | None], user: np.ndarray, lo_ms: np.ndarray, hi_ms: np.ndarray,
               last_n: dict[str, int] | None = None) -> np.ndarray:  # fmt: skip
        """Per row, the number of events of (lo, hi] one clause counts (0 for a stream without events)."""
        t = self.table.get(clause[0])
        user, lo_ms, hi_ms = (np.asarray(v, np.int64) for v in (user, lo_ms, hi_ms))
        if t.stream not in self.streams:
            return np.zeros(len(user), np.int64)
        c = self.streams[t.stream]
        hit = np.ones(len(c["ts"]), bool) if t.field is None else c[t.field] == t.value
        if t.slot is not None:
            hit &= c[t.slot] == clause[1]
        csum = np.concatenate([[0], np.cumsum(hit)])
        a, b = self._bounds(t.stream, user, lo_ms, hi_ms, (last_n or {}).get(t.stream))
        return np.maximum(csum[b] - csum[np.minimum(a, b)], 0)

    def holds(self, clause: tuple[str, str | None], user, lo_ms, hi_ms, last_n=None) -> np.ndarray:
        """Per row, whether the clause holds for the window (its count reaches ``min_count``)."""
        return self.counts(clause, user, lo_ms, hi_ms, last_n) >= self.table.get(clause[0]).min_count
