"""What a data source resolves to: a :class:`Dataset` (events, decision points, local-time offset).

Every source (an event file, the simulator, the real-data adapters) returns one; the feature layer
reads nothing else. ``DEFAULT_SHARED_DATA`` is where the real data sets live by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edgeintent.toolkit.data.schema import EventLog

#: The shared data folder next to the repository (``../shared/data``): HMOG, Taobao UserBehavior.
DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@dataclass
class Dataset:
    """Events plus what the source knows about its decision points."""

    name: str
    events: EventLog
    #: ``user_id, t_ms`` plus source-specific columns, sorted by (user_id, t_ms); ``None`` means the
    #: default rule (right after every non-buy cloud event, see ``features.windows.default_decision_points``).
    decisions: pa.Table | None = None
    #: Offset of the users' local time from UTC, for hour-of-day features (Taobao: +8 h).
    utc_offset_ms: int = 0
    meta: dict = field(default_factory=dict)

    def with_users(self, users: np.ndarray, name: str | None = None) -> Dataset:
        """The same data restricted to ``users``: their events and their decision points."""
        decisions = self.decisions
        if decisions is not None:
            keep = pa.array(np.asarray(users, dtype=np.int64))
            decisions = decisions.filter(pc.is_in(decisions.column("user_id"), value_set=keep))
        return replace(self, name=name or self.name, events=self.events.filter_users(users), decisions=decisions)
