"""Small random multi-stream logs for tests that must not depend on the simulator."""

from __future__ import annotations

import numpy as np

from edgeintent.toolkit.data.schema import EventLog

KINDS = ["swipe", "scroll", "tap", "pinch"]
PAGES = ["home", "feed", "detail", "reviews", "cart"]
WIDGETS = ["buy_now", "add_to_cart", "reviews", "back", "search", "rare_widget"]
ACTIONS = ["view"] * 8 + ["fav", "cart", "buy"]


def random_columns(seed: int, users: int = 12, events_per_user: int = 40) -> dict:
    rng = np.random.default_rng(seed)
    cols: dict = {}
    for stream, scale in (("gesture", 3), ("click", 1), ("cloud", 1)):
        n = users * events_per_user * scale // 2
        u = rng.integers(1, users + 1, n)
        ts = rng.integers(0, 3 * 24 * 3600 * 1000, n)
        c = {"user_id": u, "ts_ms": ts}
        if stream == "gesture":
            c.update(
                kind=rng.choice(KINDS, n).tolist(),
                x0=rng.random(n), y0=rng.random(n), x1=rng.random(n), y1=rng.random(n),
                duration_ms=rng.exponential(200, n), vx=rng.normal(0, 2, n), vy=rng.normal(0, 3, n),
                pressure=rng.random(n), size=rng.random(n) * 0.05,
                page=rng.choice(PAGES, n).tolist(), orientation=rng.choice([0, 0, 0, 1, 3], n),
            )
            c["x1"][::7] = c["x0"][::7]  # taps: no movement
            c["y1"][::7] = c["y0"][::7]
        elif stream == "click":
            c.update(widget=rng.choice(WIDGETS, n, p=[0.2, 0.2, 0.2, 0.2, 0.19, 0.01]).tolist(),
                     page=rng.choice(PAGES, n).tolist())
        else:
            c.update(action=rng.choice(ACTIONS, n).tolist(), item_id=rng.integers(-5, 10**12, n),
                     category_id=rng.integers(0, 50, n), price=rng.exponential(30, n).round(2))
        cols[stream] = c
    return cols


def random_log(seed: int, **kw) -> EventLog:
    return EventLog.from_columns(random_columns(seed, **kw))


#: targets whose export costs about a CPU-minute per bundle (executorch: exir's passes over the
#: recurrences torch.export unrolls to max_len; litert: litert-torch's lowering of the same unrolled
#: graph); the registry-wide loops leave them to their own test files (tests/test_executorch.py,
#: tests/test_litert.py) to keep `make test` in its CI budget
SLOW_EXPORT = ("executorch", "litert")


def quick_targets(kind: str | None = "model") -> list[str]:
    from edgeintent.exporters import list_targets

    return [t for t in list_targets(kind) if t not in SLOW_EXPORT]
