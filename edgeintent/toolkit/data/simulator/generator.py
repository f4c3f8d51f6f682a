"""The block generator: users → sessions → decisions → steps → gesture, click and cloud events.

Block ``b`` of a config draws everything from ``default_rng([seed, b])`` in one fixed order (the
order of the steps in :func:`_simulate_block`); the catalogue comes from its own generator per seed.
So a block's data depends only on the config and the block number, never on how blocks are consumed.
Each step below is a pure function of the generator and what the earlier steps produced.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from edgeintent.toolkit.data.schema import STREAMS, EventLog, ReadReport, stream_schema
from edgeintent.toolkit.data.simulator.catalogue import item_price, make_catalogue
from edgeintent.toolkit.data.simulator.config import BLOCK_USERS, SimConfig, SimData
from edgeintent.toolkit.data.simulator.gestures import GestureParams, gesture_params, gestures
from edgeintent.toolkit.data.simulator.parameters import (
    A_BUY,
    A_CART,
    A_FAV,
    A_VIEW,
    ACTIONS,
    BASE_MU,
    BASE_SD,
    BUY_CART_P,
    BUY_DWELL_MEDIAN_MS,
    BUY_NOW_P,
    CART_P,
    CLICK_RATE,
    CONVINCED_P,
    COUPON_SCALE,
    DWELL_LOG_SD,
    DWELL_MEDIAN_MS,
    EPISODE_CARRY,
    EPISODE_GAP_MS,
    EPISODE_MIN_DWELL_MS,
    EPISODE_P,
    EPISODE_SHIFT,
    FAV_P,
    FOCUS_P,
    GESTURE_RATE,
    HESITANT_GAP_MS,
    HMOG_SIZE_LOG,
    HOUR_MS,
    INITIAL,
    ITEMS_PER_CATEGORY,
    KINDS,
    M_STATE,
    N_CATEGORIES,
    ORIENTATION_P,
    P_CART,
    P_COUPON,
    P_DETAIL,
    P_REVIEWS,
    PAGE_P,
    PAGES,
    S_READY,
    SENS_SCALE,
    SENS_SHAPE,
    STATES,
    STAY_P,
    USER_STYLE_SD,
    VIEW_P,
    W_ADD,
    W_BUY,
    W_COUPON,
    W_STATE,
    WIDGET_P,
    WIDGETS,
)
from edgeintent.toolkit.data.simulator.sampling import cum, draw, exclusive_cumsum_by_group, group_starts, markov


def simulate(cfg: SimConfig) -> SimData:
    """All users of ``cfg`` at once: exactly the concatenation of :func:`iter_simulate`'s blocks."""
    blocks = list(iter_simulate(cfg))
    if len(blocks) == 1:
        return blocks[0]
    streams = {}
    for s in STREAMS:
        streams[s] = pa.concat_tables([b.events.streams[s] for b in blocks]).unify_dictionaries().combine_chunks()
    events = EventLog(streams, _report(cfg, streams))
    decisions = pa.concat_tables([b.decisions for b in blocks]).combine_chunks()
    return SimData(events=events, decisions=decisions, config=cfg)


def iter_simulate(cfg: SimConfig) -> Iterator[SimData]:
    """Blocks of ``BLOCK_USERS`` users in user order; block b uses ``default_rng([seed, b])``."""
    catalogue = make_catalogue(cfg.seed)
    gp = gesture_params()
    for b in range(cfg.n_blocks):
        first = b * BLOCK_USERS + 1
        n = min(BLOCK_USERS, cfg.users - b * BLOCK_USERS)
        yield _simulate_block(cfg, b, first, n, catalogue, gp)


def simulate_block(cfg: SimConfig, block: int) -> SimData:
    """Block ``block`` of :func:`iter_simulate` on its own (a distributed reader generates blocks apart)."""
    first = block * BLOCK_USERS + 1
    return _simulate_block(cfg, block, first, min(BLOCK_USERS, cfg.users - block * BLOCK_USERS),
                           make_catalogue(cfg.seed), gesture_params())  # fmt: skip


def _report(cfg: SimConfig, streams: dict[str, pa.Table]) -> ReadReport:
    per = {s: t.num_rows for s, t in streams.items()}
    return ReadReport(source=f"sim:{cfg.users}:{cfg.seed}", rows=sum(per.values()), per_stream=per)


# ---------------------------------------------------------------------------------------------
# What the steps hand on
# ---------------------------------------------------------------------------------------------


@dataclass
class _Users:
    """Latent traits, one entry per user of the block."""

    ids: np.ndarray  # user ids (first_user ..)
    base: np.ndarray  # base purchase logit
    sens: np.ndarray  # coupon sensitivity
    activity: np.ndarray
    style_dur: np.ndarray  # log-space gesture style
    style_dist: np.ndarray
    size_base: np.ndarray  # log finger size
    prefs: np.ndarray  # (n, 3) preferred category indices


@dataclass
class _Sessions:
    """One entry per session (sessions are user-major); ``pre`` is the intent chain before the decision."""

    n_sess: np.ndarray  # sessions per user
    user: np.ndarray  # user index of each session
    n_pre: np.ndarray  # steps before the decision
    orient: np.ndarray
    focus: np.ndarray  # focus category index
    pre: np.ndarray  # (S, max_pre) int8 states
    pre_mask: np.ndarray  # (S, max_pre) real steps
    pre_ep: np.ndarray  # (S, max_pre) episode steps before t
    dec_state: np.ndarray  # state of the last step before t
    convinced: np.ndarray
    ep_shift: np.ndarray  # the episode term E of the purchase logit

    @property
    def n(self) -> int:
        return int(self.n_sess.sum())


@dataclass
class _Outcomes:
    """Per session: the logged offer, the potential outcomes under every amount, and the realised path."""

    probs: np.ndarray  # the logging policy
    offer_idx: np.ndarray
    p_buy: np.ndarray  # (S, K)
    buy: np.ndarray  # (S, K) potential outcomes
    bought: np.ndarray  # buy[offer]
    stay: np.ndarray


@dataclass
class _Steps:
    """One entry per step (page visit), session-major, pre-decision steps before post-decision ones."""

    sess: np.ndarray  # session index
    state: np.ndarray
    post: np.ndarray  # after the decision
    buy: np.ndarray  # the buying step
    ep: np.ndarray  # a review-then-cart episode step
    user: np.ndarray  # user index
    n_steps: np.ndarray  # steps per session
    page: np.ndarray | None = None
    dwell: np.ndarray | None = None  # int64 ms
    start: np.ndarray | None = None  # absolute start time (ms)

    @property
    def n(self) -> int:
        return self.sess.size


# ---------------------------------------------------------------------------------------------
# The block, step by step (the order of the steps is the order of the draws)
# ---------------------------------------------------------------------------------------------


def _simulate_block(
    cfg: SimConfig, block: int, first_user: int, n_users: int, catalogue: dict, gp: GestureParams
) -> SimData:
    rng = np.random.default_rng([cfg.seed, block])
    users = _draw_users(rng, first_user, n_users, catalogue)
    sess = _draw_sessions(rng, cfg, users)
    out = _decide(rng, cfg, users, sess)
    steps = _draw_steps(rng, sess, out)
    _draw_pages(rng, steps, users)
    _draw_dwell(rng, cfg, steps)
    t_ms = _draw_timeline(rng, cfg, sess, steps, n_users)
    gest, g_count, g_first, g_slow = _gesture_events(rng, gp, users, sess, steps)
    clicks = _click_events(rng, users, sess, steps, gest, g_count, g_first, g_slow)
    cloud = _cloud_events(rng, users, sess, steps, catalogue)

    streams = {
        "gesture": _table("gesture", gest, {"kind": KINDS, "page": PAGES}),
        "click": _table("click", clicks, {"widget": WIDGETS, "page": PAGES}),
        "cloud": _table("cloud", cloud, {"action": ACTIONS}),
    }
    events = EventLog(streams, _report(cfg, streams))
    return SimData(events=events, decisions=_decision_table(cfg, users, sess, out, t_ms), config=cfg)


def _draw_users(rng: np.random.Generator, first_user: int, n_users: int, catalogue: dict) -> _Users:
    ids = np.arange(first_user, first_user + n_users, dtype=np.int64)
    base = rng.normal(BASE_MU, BASE_SD, n_users)
    sens = rng.gamma(SENS_SHAPE, SENS_SCALE, n_users)
    activity = np.exp(rng.normal(0.0, 0.4, n_users))
    style_dur = rng.normal(0.0, USER_STYLE_SD, n_users)
    style_dist = rng.normal(0.0, USER_STYLE_SD, n_users)
    size_base = rng.normal(HMOG_SIZE_LOG[0], HMOG_SIZE_LOG[1] * 0.6, n_users)
    prefs = np.searchsorted(catalogue["cum"], rng.random((n_users, 3)) * catalogue["cum"][-1])
    prefs = np.minimum(prefs, N_CATEGORIES - 1)
    return _Users(ids, base, sens, activity, style_dur, style_dist, size_base, prefs)


def _draw_sessions(rng: np.random.Generator, cfg: SimConfig, users: _Users) -> _Sessions:
    """Sessions per user, their orientation and focus category, and the intent chain up to the decision."""
    n_sess = 1 + rng.poisson(cfg.sessions_per_user * users.activity)
    S = int(n_sess.sum())
    s_user = np.repeat(np.arange(users.ids.size), n_sess)
    n_pre = 2 + rng.poisson(cfg.steps_before_decision, S)
    s_orient = np.array([0, 1, 3])[draw(rng, np.broadcast_to(cum(ORIENTATION_P), (S, 3)))]
    s_focus = users.prefs[s_user, rng.integers(0, 3, S)]

    # pre-decision chain
    max_pre = int(n_pre.max())
    pre = np.empty((S, max_pre), dtype=np.int8)
    pre[:, 0] = draw(rng, np.broadcast_to(cum(INITIAL), (S, 4)))
    if max_pre > 1:
        pre[:, 1:] = markov(rng, pre[:, 0], max_pre - 1)
    dec_state = pre[np.arange(S), n_pre - 1].astype(np.int64)
    pre_mask = np.arange(max_pre)[None, :] < n_pre[:, None]
    # review-then-cart episodes before t; their timing (not their count) carries the convinced flag
    pre_ep = pre_mask & (rng.random((S, max_pre)) < EPISODE_P[pre])
    convinced = rng.random(S) < CONVINCED_P
    has_ep = pre_ep.any(axis=1)
    ep_shift = np.where(has_ep, np.where(convinced, EPISODE_SHIFT[0], EPISODE_SHIFT[1]), 0.0)
    carry = np.zeros(S, bool)  # the user's previous session was convinced with an episode before t
    carry[1:] = (convinced & has_ep)[:-1] & (s_user[1:] == s_user[:-1])
    ep_shift = ep_shift + EPISODE_CARRY * carry
    return _Sessions(n_sess, s_user, n_pre, s_orient, s_focus, pre, pre_mask, pre_ep, dec_state, convinced, ep_shift)


def _decide(rng: np.random.Generator, cfg: SimConfig, users: _Users, sess: _Sessions) -> _Outcomes:
    """The logged offer, the potential outcomes (common random numbers) and whether the user stays."""
    S = sess.n
    amounts = np.asarray(cfg.amounts, dtype=np.float64)
    probs = cfg.probs
    offer_idx = draw(rng, np.broadcast_to(cum(probs), (S, amounts.size)))
    h = np.log1p(amounts / COUPON_SCALE)
    base, sens, state = users.base[sess.user], users.sens[sess.user], sess.dec_state
    logit = (base + W_STATE[state])[:, None] + (sens * M_STATE[state])[:, None] * h[None, :]
    logit = logit + sess.ep_shift[:, None]  # the episode signal (not a coupon response)
    p_buy = 1.0 / (1.0 + np.exp(-logit))
    u = rng.random(S)
    buy = u[:, None] < p_buy
    bought = buy[np.arange(S), offer_idx]
    stay = bought | (rng.random(S) < STAY_P[state])
    return _Outcomes(probs, offer_idx, p_buy, buy, bought, stay)


def _draw_steps(rng: np.random.Generator, sess: _Sessions, out: _Outcomes) -> _Steps:
    """The post-decision chain, then every step of every session in order (with episode and buy flags)."""
    S = sess.n
    bought, pre, pre_mask = out.bought, sess.pre, sess.pre_mask
    # post-decision steps: buyers get a buying step then Poisson(1.5) more; stayers 1 + Poisson(2.5)
    n_post = np.where(bought, 1 + rng.poisson(1.5, S), np.where(out.stay, 1 + rng.poisson(2.5, S), 0))
    max_post = int(n_post.max()) if S else 0
    post = np.zeros((S, max(max_post, 1)), dtype=np.int8)
    if max_post:
        start = np.where(bought, S_READY, sess.dec_state)
        post[:, :max_post] = markov(rng, start, max_post)
        post[bought, 0] = S_READY  # the buying step

    post_mask = np.arange(post.shape[1])[None, :] < n_post[:, None]
    post_ep = post_mask & (rng.random(post.shape) < EPISODE_P[post])
    st_sess = np.concatenate([np.nonzero(pre_mask)[0], np.nonzero(post_mask)[0]])
    st_state = np.concatenate([pre[pre_mask], post[post_mask]]).astype(np.int64)
    st_post = np.concatenate([np.zeros(int(pre_mask.sum()), bool), np.ones(int(post_mask.sum()), bool)])
    post_first = np.zeros(post.shape, bool)
    post_first[:, 0] = True
    st_first_post = np.concatenate([np.zeros(int(pre_mask.sum()), bool), post_first[post_mask]])
    st_ep = np.concatenate([sess.pre_ep[pre_mask], post_ep[post_mask]])
    order = np.argsort(st_sess, kind="stable")
    st_sess, st_state, st_post, st_first_post = st_sess[order], st_state[order], st_post[order], st_first_post[order]
    st_buy = st_first_post & bought[st_sess]
    st_ep = st_ep[order] & ~st_buy
    return _Steps(st_sess, st_state, st_post, st_buy, st_ep, sess.user[st_sess], sess.n_pre + n_post)


def _draw_pages(rng: np.random.Generator, steps: _Steps, users: _Users) -> None:
    """Each step's page: state-dependent (coupon centre scaled by sensitivity); buy and episode pages forced."""
    page_p = PAGE_P[steps.state].copy()
    page_p[:, P_COUPON] *= users.sens[steps.user]
    page = draw(rng, cum(page_p))
    page[steps.buy] = np.where(rng.random(int(steps.buy.sum())) < 0.6, P_CART, P_DETAIL)
    page[steps.ep] = np.where(rng.random(int(steps.ep.sum())) < 0.5, P_REVIEWS, P_DETAIL)
    steps.page = page


def _draw_dwell(rng: np.random.Generator, cfg: SimConfig, steps: _Steps) -> None:
    """Each step's dwell (ms): log-normal per state; a buying step fits in the real-time horizon."""
    st_buy, st_ep = steps.buy, steps.ep
    dwell = DWELL_MEDIAN_MS[steps.state] * np.exp(rng.normal(0.0, DWELL_LOG_SD, steps.n))
    dwell[st_buy] = BUY_DWELL_MEDIAN_MS * np.exp(rng.normal(0.0, 0.5, int(st_buy.sum())))
    dwell = np.clip(dwell, 2_000.0, 600_000.0)
    dwell[st_ep] = np.maximum(dwell[st_ep], EPISODE_MIN_DWELL_MS)
    dwell[st_buy] = np.minimum(dwell[st_buy], cfg.rt_horizon_ms)
    steps.dwell = np.round(dwell).astype(np.int64)


def _draw_timeline(rng: np.random.Generator, cfg: SimConfig, sess: _Sessions, steps: _Steps, n_users: int) -> np.ndarray:
    """Session start times and each step's start; returns the decision time of each session."""
    S, dwell, n_steps = sess.n, steps.dwell, steps.n_steps
    st_start_rel = exclusive_cumsum_by_group(dwell, n_steps)
    # decision t relative to the session start = total dwell of the pre steps
    sess_first = group_starts(n_steps)
    pre_dwell = np.add.reduceat(np.where(steps.post, 0, dwell), sess_first) if S else np.zeros(0, np.int64)
    sess_len = np.add.reduceat(dwell, sess_first) if S else np.zeros(0, np.int64)

    # session start times: first within 2 days of start_ms, then gaps of hours to days
    gap = cfg.min_gap_ms + np.round(HOUR_MS * 8.0 * np.exp(rng.normal(0.0, 1.0, S))).astype(np.int64)
    first_start = cfg.start_ms + rng.integers(0, 2 * 24 * HOUR_MS, n_users)
    s_start = first_start[sess.user] + exclusive_cumsum_by_group(sess_len + gap, sess.n_sess)
    steps.start = s_start[steps.sess] + st_start_rel
    return s_start + pre_dwell


def _gesture_events(
    rng: np.random.Generator, gp: GestureParams, users: _Users, sess: _Sessions, steps: _Steps
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Gestures of every step; also their count per step, each step's first gesture, and the slow scrolls."""
    g_count = 1 + rng.poisson(GESTURE_RATE[steps.state] * np.sqrt(users.activity[steps.user])) + steps.ep
    g_first = group_starts(g_count)  # an episode step's slow reading scroll is its first gesture
    g_slow = np.zeros(int(g_count.sum()), bool)
    g_slow[g_first[steps.ep]] = True
    gest = gestures(rng, gp, np.repeat(np.arange(steps.n), g_count), steps.state, steps.page, steps.start, steps.dwell,
                    steps.user, users.style_dur, users.style_dist, users.size_base, sess.orient[steps.sess],
                    g_slow)  # fmt: skip
    gest["user_id"] = users.ids[gest.pop("_user")]
    return gest, g_count, g_first, g_slow


def _click_events(
    rng: np.random.Generator,
    users: _Users,
    sess: _Sessions,
    steps: _Steps,
    gest: dict[str, np.ndarray],
    g_count: np.ndarray,
    g_first: np.ndarray,
    g_slow: np.ndarray,
) -> dict[str, np.ndarray]:
    """Widget clicks: per-state clicks, the buying step's click, and each episode's add_to_cart after a
    reading pause (the step's other gestures are moved out of the pause, in ``gest`` in place)."""
    n_st, st_start, dwell = steps.n, steps.start, steps.dwell
    c_count = rng.poisson(CLICK_RATE[steps.state])
    c_step = np.repeat(np.arange(n_st), c_count)
    wp = WIDGET_P[steps.state[c_step]].copy()
    wp[:, W_COUPON] *= users.sens[steps.user[c_step]]
    c_widget = draw(rng, cum(wp))
    c_ts = st_start[c_step] + 1 + np.floor(rng.random(c_step.size) * (dwell[c_step] - 1)).astype(np.int64)
    # the buying step's add_to_cart / buy_now click, in its first half
    b_steps = np.nonzero(steps.buy)[0]
    b_widget = np.where(rng.random(b_steps.size) < BUY_NOW_P, W_BUY, W_ADD)
    b_ts = st_start[b_steps] + 1 + np.floor(rng.random(b_steps.size) * 0.5 * (dwell[b_steps] - 2)).astype(np.int64)
    # the episode steps' add_to_cart click after a reading pause: 0.3-2.5 s after the slow scroll ends in
    # convinced sessions, 5-15 s in hesitant ones (capped inside the step)
    e_steps = np.nonzero(steps.ep)[0]
    e_start = gest["ts_ms"][g_first[e_steps]]
    e_end = e_start + gest["duration_ms"][g_first[e_steps]].astype(np.int64)
    lo_hi = np.where(sess.convinced[steps.sess[e_steps]][:, None], np.array(EPISODE_GAP_MS), np.array(HESITANT_GAP_MS))
    gap = np.round(lo_hi[:, 0] + (lo_hi[:, 1] - lo_hi[:, 0]) * rng.random(e_steps.size)).astype(np.int64)
    e_ts = np.minimum(e_end + gap, st_start[e_steps] + dwell[e_steps] - 1)
    _clear_pauses(rng, steps, gest["ts_ms"], g_count, g_slow, e_steps, e_start, e_ts)
    c_step = np.concatenate([c_step, b_steps, e_steps])
    return {
        "user_id": users.ids[steps.user[c_step]],
        "ts_ms": np.concatenate([c_ts, b_ts, e_ts]),
        "widget": np.concatenate([c_widget, b_widget, np.full(e_steps.size, W_ADD)]),
        "page": steps.page[c_step],
    }


def _clear_pauses(
    rng: np.random.Generator,
    steps: _Steps,
    ts: np.ndarray,
    g_count: np.ndarray,
    g_slow: np.ndarray,
    e_steps: np.ndarray,
    e_start: np.ndarray,
    e_ts: np.ndarray,
) -> None:
    """No touch during a reading pause: the step's other gestures that fell in [scroll start, click] are
    moved (``ts`` in place), uniformly over the rest of the step."""
    n_st, st_start, dwell = steps.n, steps.start, steps.dwell
    g_step = np.repeat(np.arange(n_st), g_count)
    pause_lo = np.full(n_st, -1, np.int64)
    pause_hi = np.full(n_st, -1, np.int64)
    pause_lo[e_steps], pause_hi[e_steps] = e_start, e_ts
    move = (ts >= pause_lo[g_step]) & (ts <= pause_hi[g_step]) & ~g_slow
    mv = g_step[move]
    width = pause_hi[mv] - pause_lo[mv] + 1
    new = st_start[mv] + 1 + np.floor(rng.random(mv.size) * (dwell[mv] - 1 - width)).astype(np.int64)
    ts[move] = np.where(new >= pause_lo[mv], new + width, new)


def _cloud_events(
    rng: np.random.Generator, users: _Users, sess: _Sessions, steps: _Steps, catalogue: dict
) -> dict[str, np.ndarray]:
    """Cloud behaviours: view / fav / cart on detail pages, cart and buy in the buying step; one item per step."""
    n_st, st_state, st_buy, st_start = steps.n, steps.state, steps.buy, steps.start
    detail = steps.page == P_DETAIL
    has_view = detail & (rng.random(n_st) < VIEW_P)
    has_fav = detail & (rng.random(n_st) < FAV_P[st_state]) & ~st_buy
    has_cart = detail & (rng.random(n_st) < CART_P[st_state]) & ~st_buy
    buy_cart = st_buy & (rng.random(n_st) < BUY_CART_P)
    # one item per step: the focus category with FOCUS_P, else a preferred or a popular category
    r = rng.random(n_st)
    pref_cat = users.prefs[steps.user, rng.integers(0, 3, n_st)]
    pop_cat = np.minimum(np.searchsorted(catalogue["cum"], rng.random(n_st) * catalogue["cum"][-1]), N_CATEGORIES - 1)
    focus_p = np.where(st_buy, 1.0, FOCUS_P[st_state])
    st_cat = np.where(r < focus_p, sess.focus[steps.sess], np.where(r < focus_p + (1 - focus_p) * 0.7, pref_cat, pop_cat))
    st_item = catalogue["ids"][st_cat].astype(np.int64) * 100_000 + np.floor(
        ITEMS_PER_CATEGORY * rng.random(n_st) ** 3
    ).astype(np.int64) + 1
    span = steps.dwell - 2
    ev_parts = []
    for mask, action, lo, hi in (
        (has_view, A_VIEW, 0.0, 0.1),
        (has_fav, A_FAV, 0.3, 1.0),
        (has_cart, A_CART, 0.3, 1.0),
        (buy_cart, A_CART, 0.55, 0.8),
        (st_buy, A_BUY, 0.85, 1.0),
    ):
        idx = np.nonzero(mask)[0]
        frac = lo + (hi - lo) * rng.random(idx.size)
        ts = st_start[idx] + 1 + np.floor(frac * span[idx]).astype(np.int64)
        ev_parts.append((idx, np.full(idx.size, action), ts))
    cl_step = np.concatenate([p[0] for p in ev_parts])
    return {
        "user_id": users.ids[steps.user[cl_step]],
        "ts_ms": np.concatenate([p[2] for p in ev_parts]),
        "action": np.concatenate([p[1] for p in ev_parts]),
        "item_id": st_item[cl_step],
        "category_id": catalogue["ids"][st_cat[cl_step]].astype(np.int64),
        "price": item_price(st_item[cl_step], st_cat[cl_step], catalogue),
    }


def _decision_table(cfg: SimConfig, users: _Users, sess: _Sessions, out: _Outcomes, t_ms: np.ndarray) -> pa.Table:
    """The decision points with offers and potential outcomes; the config rides in the schema metadata."""
    amounts = np.asarray(cfg.amounts, dtype=np.float64)
    K = amounts.size
    dec = pa.table(
        {
            "user_id": pa.array(users.ids[sess.user], pa.int64()),
            "t_ms": pa.array(t_ms, pa.int64()),
            "offer": pa.array(amounts[out.offer_idx], pa.float64()),
            "propensity": pa.array(out.probs[out.offer_idx], pa.float64()),
            "state": pa.array(np.asarray(STATES, dtype=object)[sess.dec_state], pa.string()),
            "coupon_sensitivity": pa.array(users.sens[sess.user], pa.float64()),
            "p_buy": pa.FixedSizeListArray.from_arrays(pa.array(out.p_buy.ravel(), pa.float64()), K),
            "buy": pa.FixedSizeListArray.from_arrays(pa.array(out.buy.ravel(), pa.bool_()), K),
        }
    )
    meta = {
        "amounts": json.dumps(list(cfg.amounts)),
        "offer_probs": json.dumps([float(p) for p in out.probs]),
        "rt_horizon_ms": json.dumps(int(cfg.rt_horizon_ms)),
        "simulator": json.dumps(cfg.to_dict()),
    }
    return dec.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})


def _table(stream: str, cols: dict[str, np.ndarray], vocab: dict[str, tuple[str, ...]]) -> pa.Table:
    """A stream table in ``stream_schema`` layout, sorted by (user_id, ts_ms) (stable)."""
    schema = stream_schema(stream)
    order = np.lexsort((cols["ts_ms"], cols["user_id"]))
    arrays = []
    for f in schema:
        v = np.asarray(cols[f.name])[order]
        if pa.types.is_dictionary(f.type):
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(v.astype(np.int32)), pa.array(list(vocab[f.name]))))
        else:
            arrays.append(pa.array(v, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)
