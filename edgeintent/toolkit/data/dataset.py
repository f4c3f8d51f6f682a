"""What a data source resolves to: a :class:`Dataset` (events, decision points, local-time offset).

Every source (an event file, the simulator, the real-data adapters) returns one; the feature layer
reads nothing else. ``DEFAULT_SHARED_DATA`` is where the real data sets live by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

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
