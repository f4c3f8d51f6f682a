"""What to simulate (:class:`SimConfig`) and what comes out (:class:`SimData`).

A config is frozen and validated on construction (every problem is a one-line
:class:`~edgeintent.errors.ConfigError`); the same config always gives the same data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from edgeintent.errors import ConfigError
from edgeintent.toolkit.data.schema import EventLog

SIM_VERSION = 1
#: Users per block. Fixed: the output for a seed must not depend on how it is consumed.
BLOCK_USERS = 5000
#: 2024-01-01 00:00 UTC, the earliest session start.
DEFAULT_START_MS = 1_704_067_200_000
STAY_HORIZON_MS = 30 * 60 * 1000


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. ``users`` are numbered 1..users; the same config always gives the same data."""

    users: int = 2000
    seed: int = 0
    amounts: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0)  # coupon amounts, 0 = no coupon
    offer_probs: tuple[float, ...] | None = None  # logging policy over amounts; None = uniform
    rt_horizon_ms: int = 30 * 60 * 1000  # the real-time purchase horizon
    sessions_per_user: float = 2.3  # mean extra sessions beyond the first (times activity)
    steps_before_decision: float = 4.0  # mean extra steps before the decision beyond the minimum 2
    start_ms: int = DEFAULT_START_MS

    def __post_init__(self) -> None:
        object.__setattr__(self, "amounts", tuple(float(a) for a in self.amounts))
        if self.offer_probs is not None:
            object.__setattr__(self, "offer_probs", tuple(float(p) for p in self.offer_probs))
        for name in ("users", "seed", "rt_horizon_ms", "start_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ConfigError(f"simulator {name} must be an integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.users < 1:
            raise ConfigError(f"simulator users must be positive, got {self.users}")
        if self.seed < 0:
            raise ConfigError(f"simulator seed must be ≥ 0, got {self.seed}")
        a = np.asarray(self.amounts)
        if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(np.diff(a) <= 0):
            raise ConfigError(f"coupon amounts must be non-negative and strictly increasing, got {list(self.amounts)}")
        if self.offer_probs is not None:
            p = np.asarray(self.offer_probs)
            if p.size != a.size or np.any(p < 0) or not np.all(np.isfinite(p)) or abs(p.sum() - 1.0) > 1e-6:
                raise ConfigError(
                    f"offer_probs must be {a.size} non-negative numbers summing to 1, got {list(self.offer_probs)}"
                )
        if self.rt_horizon_ms < 60_000:
            raise ConfigError(f"rt_horizon_ms must be at least 60000 (1 min), got {self.rt_horizon_ms}")
        if self.sessions_per_user < 0 or self.steps_before_decision < 0:
            raise ConfigError("sessions_per_user and steps_before_decision must be ≥ 0")
        if self.start_ms < 0:
            raise ConfigError(f"start_ms must be ≥ 0, got {self.start_ms}")

    @property
    def probs(self) -> np.ndarray:
        """The logging policy as an array (uniform when ``offer_probs`` is None)."""
        if self.offer_probs is None:
            return np.full(len(self.amounts), 1.0 / len(self.amounts))
        return np.asarray(self.offer_probs, dtype=np.float64)

    @property
    def n_blocks(self) -> int:
        return -(-self.users // BLOCK_USERS)

    @property
    def min_gap_ms(self) -> int:
        """Smallest time between a session's last event (or decision) and the next session."""
        return max(self.rt_horizon_ms, STAY_HORIZON_MS) + 30 * 60 * 1000

    def to_dict(self) -> dict:
        d = asdict(self)
        d["amounts"] = list(self.amounts)
        d["offer_probs"] = [float(p) for p in self.probs]
        d["block_users"] = BLOCK_USERS
        d["version"] = SIM_VERSION
        return d


@dataclass
class SimData:
    """Simulated events (streams gesture, click, cloud) and the decision points with potential outcomes."""

    events: EventLog
    decisions: pa.Table
    config: SimConfig

    def config_dict(self) -> dict:
        return self.config.to_dict()
