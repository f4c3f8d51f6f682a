"""From a data source's cloud stream to what the scorers are fitted and judged on.

What the source's words mean here (the same on Taobao and on the simulator):

- **category**: the cloud event's ``category_id``. The vocabulary is the ``vocab`` most frequent
  categories of the training users (index 0 = any other category: scores 0 there).
- **industry**: a coarse group of categories: the source's own top-level groups when it has them
  (``simctx:``, ``Dataset.meta["context"]["industry_of"]``); Taobao has no category tree, so there
  industries are derived from co-engagement: categories are embedded by a truncated SVD of the (category × user)
  event-count matrix (log1p counts) and grouped by k-means (scikit-learn, fixed seeds) into
  ``industries`` groups. Categories of one industry are the ones the same users touch.
- **user tags** (as of the request): ``c:<index>`` for the user's 3 most frequent categories so far,
  ``act:<k>`` (k = ⌊log2(1 + events so far)⌋, at most 6) and ``buyer`` (bought anything before).
- **terms**: the categories in the user's decayed profile (the clicked categories; neither source has
  search queries).
- **request**: a user's first event of a local calendar day (the moment the app opens) on any day
  after their first; the history is every earlier event, the targets are the categories the user
  engages with (fav, cart, buy) that day.
- **context** (:func:`context_features`): local hour and weekday of the event or request, plus the
  simulator's city-hour weather when the source carries it (``Dataset.meta["context"]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeintent.errors import DataError
from edgeintent.rank.profile import ACTION_WEIGHT, ACTIONS, DecayRule, Profile

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
ENGAGE = (1, 2, 3)  # fav, cart, buy (action codes)
TOP_TAGS = 3
MAX_ACT = 6


@dataclass
class Events:
    """The cloud stream as arrays sorted by (user, ts)."""

    user: np.ndarray
    ts: np.ndarray
    action: np.ndarray  # codes into ACTIONS
    cat: np.ndarray  # raw category ids
    utc_offset_ms: int
    context_table: dict | None = None  # the simulator's weather: see context_features

    def __len__(self) -> int:
        return len(self.user)


def events_of(dataset) -> Events:
    """The dataset's cloud events (a one-line :class:`DataError` when it has none)."""
    if "cloud" not in dataset.events.present() or dataset.events.stream("cloud").num_rows == 0:
        raise DataError(f"{dataset.name}: the rank stage needs cloud events (view/fav/cart/buy with category_id); there are none")
    t = dataset.events.stream("cloud")
    action = np.asarray(t["action"].cast("string").to_pylist())
    code = np.full(len(action), -1, np.int64)
    for i, a in enumerate(ACTIONS):
        code[action == a] = i
    user = t["user_id"].to_numpy().astype(np.int64)
    ts = t["ts_ms"].to_numpy().astype(np.int64)
    cat = t["category_id"].to_numpy().astype(np.int64)
    order = np.lexsort((ts, user))
    keep = order[code[order] >= 0]
    return Events(user[keep], ts[keep], code[keep], cat[keep], int(dataset.utc_offset_ms), dataset.meta.get("context"))


N_BASE_CONTEXT = 2
BASE_CONTEXT = ("hour", "weekday")


def context_names(ev: Events) -> list[str]:
    extra = list(ev.context_table["features"]) if ev.context_table else []
    return [*BASE_CONTEXT, *extra]


def context_features(ev: Events, user: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """(n, F) float32: local hour, weekday (0 = Monday) and, on the simulator with context, the weather
    of the user's city at that hour (``Dataset.meta["context"]``: ``city_of(user)`` and ``weather(city, hour index)``)."""
    local = ts + ev.utc_offset_ms
    hour = (local // HOUR_MS) % 24
    weekday = (local // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday
    cols = [hour.astype(np.float32), weekday.astype(np.float32)]
    if ev.context_table:
        ctx = ev.context_table
        cols += list(ctx["lookup"](user, ts).T.astype(np.float32))
    return np.stack(cols, axis=1).astype(np.float32)


def split_users(users: np.ndarray, test_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train users, held-out users): a seeded permutation of the distinct users."""
    u = np.unique(users)
    perm = np.random.default_rng([seed, 0x5A11]).permutation(u)
    n_test = int(round(test_share * len(u)))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def make_vocab(ev: Events, users: np.ndarray, size: int) -> np.ndarray:
    """Raw category ids of vocabulary indices 1..; index 0 is "any other" (raw id −1)."""
    sel = np.isin(ev.user, users)
    cats, counts = np.unique(ev.cat[sel], return_counts=True)
    order = np.lexsort((cats, -counts))[: size - 1]
    return np.concatenate([[-1], cats[order]]).astype(np.int64)


def index_of(vocab: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Vocabulary index of raw category ids (0 when unknown)."""
    lut = {int(c): i for i, c in enumerate(vocab) if i > 0}
    return np.asarray([lut.get(int(c), 0) for c in raw], np.int64)


def derive_industries(ev: Events, users: np.ndarray, idx: np.ndarray, vocab: int, n_groups: int, seed: int) -> np.ndarray:
    """(V,) industry of each vocabulary index: k-means over an SVD of the (category × user) counts."""
    from scipy.sparse import coo_matrix
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD

    sel = np.isin(ev.user, users) & (idx > 0)
    uu, uinv = np.unique(ev.user[sel], return_inverse=True)
    m = coo_matrix((np.ones(int(sel.sum())), (idx[sel], uinv)), shape=(vocab, len(uu))).tocsr()
    m.data = np.log1p(m.data)
    n_groups = max(1, min(n_groups, vocab - 1))
    dims = max(1, min(16, min(m.shape) - 1))
    emb = TruncatedSVD(n_components=dims, random_state=seed).fit_transform(m[1:]) if dims < min(m.shape) else m[1:].toarray()
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb / np.where(norm > 0, norm, 1)
    groups = KMeans(n_clusters=n_groups, n_init=4, random_state=seed).fit_predict(emb)
    return np.concatenate([[0], groups]).astype(np.int64)


@dataclass
class Requests:
    """One row per request; per-request arrays and ragged lists."""

    user: np.ndarray
    t_ms: np.ndarray
    prof_key: np.ndarray  # (n, K) int64
    prof_w: np.ndarray  # (n, K) float64
    prof_t: np.ndarray  # (n, K) int64
    tags: list[tuple[str, ...]]
    targets: list[np.ndarray]  # vocab indices engaged that day
    clicks: list[np.ndarray]  # vocab indices viewed that day

    def __len__(self) -> int:
        return len(self.user)


def user_tags(counts: dict[int, int], n_events: int, bought: bool) -> tuple[str, ...]:
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_TAGS]
    tags = [f"c:{k}" for k, _ in top] + [f"act:{min(MAX_ACT, int(np.log2(1 + n_events)))}"]
    if bought:
        tags.append("buyer")
    return tuple(sorted(tags))


def build_requests(ev: Events, idx: np.ndarray, users: np.ndarray, rule: DecayRule) -> Requests:
    """Every request of ``users`` (see the module docstring), with the profile and tags as of it."""
    sel = np.flatnonzero(np.isin(ev.user, users))
    day = (ev.ts + ev.utc_offset_ms) // DAY_MS
    weights = np.asarray([ACTION_WEIGHT[a] for a in ACTIONS])
    out = {k: [] for k in ("user", "t", "key", "w", "tt", "tags", "targets", "clicks")}
    bounds = np.flatnonzero(np.diff(ev.user[sel])) + 1
    for rows in np.split(sel, bounds):
        if len(rows) == 0:
            continue
        p = Profile(rule)
        counts: dict[int, int] = {}
        bought = False
        n_seen = 0
        days = day[rows]
        starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
        ends = np.r_[starts[1:], len(rows)]
        for si, (a, b) in enumerate(zip(starts, ends, strict=True)):
            if si > 0:
                todays = rows[a:b]
                k = idx[todays]
                act = ev.action[todays]
                eng = np.unique(k[(k > 0) & np.isin(act, ENGAGE)])
                clk = np.unique(k[(k > 0) & (act == 0)])
                keys, w, tt = p.arrays()
                out["user"].append(ev.user[rows[0]])
                out["t"].append(ev.ts[rows[a]])
                out["key"].append(keys), out["w"].append(w), out["tt"].append(tt)
                out["tags"].append(user_tags(counts, n_seen, bought))
                out["targets"].append(eng), out["clicks"].append(clk)
            for r in rows[a:b]:
                k = int(idx[r])
                p.update(int(ev.ts[r]), k, float(weights[ev.action[r]]))
                if k > 0:
                    counts[k] = counts.get(k, 0) + 1
                bought |= bool(ev.action[r] == 3)
                n_seen += 1
    kdim = rule.capacity
    return Requests(
        np.asarray(out["user"], np.int64), np.asarray(out["t"], np.int64),
        np.asarray(out["key"], np.int64).reshape(-1, kdim), np.asarray(out["w"], np.float64).reshape(-1, kdim),
        np.asarray(out["tt"], np.int64).reshape(-1, kdim), out["tags"], out["targets"], out["clicks"],
    )  # fmt: skip


def tag_itemsets(tags: tuple[str, ...], max_tags: int = 2) -> list[tuple[str, ...]]:
    """Every set of 1..max_tags of the tags (sorted tuples)."""
    from itertools import combinations

    out = []
    for n in range(1, max_tags + 1):
        out += [tuple(c) for c in combinations(sorted(tags), n)]
    return out
