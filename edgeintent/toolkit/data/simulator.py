"""Behaviour simulator: edgeintent's built-in default data set (``sim:USERS[:SEED]``).

No public data set links touch gestures, widget clicks and cloud behaviours of the same users with
purchase labels, so this module generates all three streams jointly, with decision points, logged
coupon offers and the *potential outcomes* under every coupon amount. Everything is vectorised with
numpy (a loop over steps, vectorised across sessions), deterministic per seed, and produced in
fixed blocks of users so that ``sim:1000000`` streams in bounded memory.

Generative story
================

**Users** (numbered 1..N) have latent traits:

- ``base``: base purchase propensity (a logit, normal across users);
- ``coupon_sensitivity``: how much a coupon moves them (Gamma, mean 1); coupon-sensitive users also
  visit the coupon centre and tap its widget more often, the only trace of it in the events;
- gesture style: per-user multipliers of gesture duration and distance (log-normal), finger size;
- activity: scales the number of sessions and the number of gestures per page visit.

**Sessions.** Each user has ``1 + Poisson(sessions_per_user * activity)`` sessions separated by gaps
of hours to days; every gap is at least ``max(rt_horizon_ms, 30 min) + 30 min`` after the session's
last event, so no real-time or stay horizon reaches into the next session.

**Steps.** A session is a sequence of steps (page visits). A latent **intent state** in
{browsing, comparing, ready_to_buy, about_to_leave} evolves over the steps as a Markov chain
(``TRANSITION``). Each step draws a page from a state-dependent table and a dwell time, and emits:

- gestures (``1 + Poisson(rate[state] * activity**0.5)`` per step): browsing = fast vertical
  flings and scrolls on feed/search; comparing = horizontal image swipes and pinches on detail pages,
  slow scrolling on reviews; ready_to_buy = slower, deliberate taps (often on the bottom buy bar) and
  short scrolls on detail/cart/coupon_centre; about_to_leave = fast erratic flings, edge "back"
  swipes, fewer gestures per second (longer gaps);
- widget clicks (``Poisson(rate[state])``): search/item_card (browsing), reviews/image/share
  (comparing), add_to_cart/buy_now/coupon_centre (ready_to_buy), back/home_tab (about_to_leave),
  each state with a broad tail over all widgets;
- cloud behaviours: a ``view`` when a detail page is entered, ``fav`` and ``cart`` on detail pages
  with state-dependent probabilities; ``buy`` only through the decision mechanism below.

Every event of a step lies strictly inside the step's time span.

**Review-then-cart episodes** (``EPISODE_P``, mostly comparing and ready_to_buy steps): an episode
step is on the detail or reviews page, lasts at least ``EPISODE_MIN_DWELL_MS`` and holds, besides its
usual events, one slow reading scroll (vertical, finger up, ~0.75 s and ~0.08 screens: a third of a
typical scroll's speed, in the first 10-40 % of the step) and one add_to_cart click after a reading
pause with no touch: none of the step's other gestures falls between the scroll and the click. Each
session is **convinced** with probability ``CONVINCED_P``: then every episode's pause is short,
0.3-2.5 s ("read the reviews, then put it in the cart"); otherwise (hesitant) it is 5-15 s.
Convinced or hesitant, a session has the same number of episodes, slow scrolls and add_to_cart
clicks, in the same merged order (the click is the next touch event after the scroll), so counts,
per-stream aggregates and the merged order do not tell the two apart: only the time between the two
streams' events does.

**Frequencies.** DIPN reports swipes ~38x and taps ~9x as frequent as browse events. To keep data
sizes sane this simulator scales that down: gestures are about 14x and clicks about 3x as frequent
as cloud events (about 34 gestures, 7.5 clicks and 2.5 cloud events per session, 3.5 sessions per
user on average).

**Decision points, coupons, potential outcomes.** Each session has exactly one decision point, at
the boundary after ``2 + Poisson(steps_before_decision)`` steps, so ``t_ms`` never equals an event
timestamp. ``state`` is the intent state of the last step before t. The simulator logs a coupon
offer drawn from ``amounts`` with ``offer_probs`` (uniform by default). The true probability of a
purchase within ``rt_horizon_ms`` under amount ``a`` is::

    p[a] = sigmoid(base_user + W[state] + coupon_sensitivity_user * h(a) * M[state] + E),  h(a) = log(1 + a/5)

with uplift largest for comparing and about_to_leave users and small for ready_to_buy users (who
mostly buy anyway). ``E`` is the episode term: ``EPISODE_SHIFT`` for a session with an episode
before t (+2.0 if convinced, −2.0 if hesitant: on average an episode triples the purchase odds, a
convinced one multiplies them by 7.4), 0 without one, plus ``EPISODE_CARRY`` in the session after a
convinced one with an episode (the user comes back for the item in the cart: a long-term purchase
signal). Potential outcomes use common
random numbers: one ``u ~ U(0, 1)`` per decision and ``buy[a] = u < p[a]``, so they are monotone in
the amount. The realised trajectory follows the offered amount: if ``buy[offer]``, the next step is a
ready_to_buy buying step (usually an add_to_cart / buy_now click and a cloud ``cart``) that ends with
a cloud ``buy`` inside ``(t, t + rt_horizon_ms]``, then the session may go on; otherwise the user either stays
(probability ``STAY_P[state]``: low for about_to_leave) and goes on with the Markov chain without any
buy, or leaves at t. Buys happen **only** through this mechanism, so a buy lies in a decision's
horizon exactly when that decision's ``buy[offer]`` is true.

Calibration
===========

- Gesture marginals of swipes (HMOG StrokeEvent) and scrolls (HMOG ScrollEvent trajectories):
  see ``HMOG_MARGINALS``. State and user shifts are in log space, centred on the gesture-weighted
  state mix and with the within-state spread reduced, so the overall marginals stay near the real
  ones. Taps and pinches are not in HMOG's stroke/scroll files; their constants are plausible
  guesses. Pressure is 1.0 for every touch in HMOG (the Galaxy S4 reports no pressure), so the
  simulator emits 1.0; ``size`` follows HMOG's finger size (multiples of 1/510).
- Swipe : scroll mix near HMOG's 41 : 59 (``HMOG_SWIPE_SHARE``).
- Cloud action mix about the Taobao UserBehavior sample (``TAOBAO_ACTION_MIX``): view 90 %, cart 5 %,
  fav 3 %, buy 2 %.
- Real-time purchase rate per decision point 5.0 % (3.3 % without a coupon, 6.9 % with the largest
  default coupon); ``BASE_MU`` is set so that, with the episodes, buys stay 2.0 % of cloud events
  (sim:20000:1).

Learnability
============

**The cross-stream timing signal.** The episode term ``E`` is visible only in *when* a slow reading
scroll (gesture stream) and an add_to_cart click (click stream) happened relative to each other:
a click within 2.5 s after the scroll means convinced, 5-15 s after it hesitant. Reading it needs
both streams and their relative times (DIPN's inter-view attention with its relative-time terms). A
merged-order model sees the two events adjacent either way; its per-stream "time since the previous
event of the same stream" features do not span the two streams. Per-stream models see each event's
age at t (log seconds, where a few seconds at a minute's age are a difference in the second decimal),
and window aggregates see nothing of it.

The real-time purchase signal is spread over the streams: the state shows in gesture kinds, pages,
speeds and tap positions, in widget clicks, and only faintly in the sparse cloud stream; the user's
base propensity shows only through their history. On ``sim:20000:0`` a gradient-boosted model on
per-window aggregates (last 50 gestures / 20 clicks / 20 cloud events before t, plus the offer)
reaches AUC 0.733, the same model on the cloud aggregates alone 0.609, the best single aggregate
0.645 (the add_to_cart count 0.639: episodes raise the odds on average; ``tests/test_simulate.py``).
The true ``p_buy[offer]`` scores 0.916 on ``sim:20000:1``; the gap is mostly the episode timing,
which aggregates cannot see. On ``sim:20000:0`` a decision whose last 20 minutes hold a slow
detail / reviews scroll followed by add_to_cart within 3 s (18 % of decisions) buys within 30 min
at 19 %; one with both events but not so coupled (30 %) at 1.5 %; one without them at 2.2 %
(``test_review_then_cart_timing_carries_the_signal``). Earlier versions of this simulator had half
the episodes and a convinced shift of +1.2 (15 % vs 2.9 %): with about 150 convinced positives among
the training users, no model learned the timing under early stopping. At this strength DIPN learns
it within 3-4 epochs and the merged-order ``rnn`` and DIPN without inter-view attention do not
(README, quality section).

Gesture velocity: for swipes ``(vx, vy)`` is the fling velocity along the displacement (HMOG's
``Speed_X/Y``), for scrolls, taps and pinches it is the average velocity (displacement / duration).

``decisions`` (sorted by user_id, t_ms): ``user_id``, ``t_ms``, ``offer``, ``propensity`` (the logging
policy's probability of the offer), ``state``, ``coupon_sensitivity``, ``p_buy`` and ``buy``
(fixed-size lists over ``amounts``); the schema metadata holds ``amounts``, ``offer_probs`` and
``rt_horizon_ms`` as JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from edgeintent.errors import ConfigError
from edgeintent.toolkit.data.events import STREAMS, EventLog, ReadReport, stream_schema

SIM_VERSION = 1
#: Users per block. Fixed: the output for a seed must not depend on how it is consumed.
BLOCK_USERS = 5000
#: 2024-01-01 00:00 UTC, the earliest session start.
DEFAULT_START_MS = 1_704_067_200_000
STAY_HORIZON_MS = 30 * 60 * 1000
HOUR_MS = 3600 * 1000

STATES: tuple[str, ...] = ("browsing", "comparing", "ready_to_buy", "about_to_leave")
PAGES: tuple[str, ...] = ("home", "feed", "search", "detail", "reviews", "cart", "coupon_centre")
KINDS: tuple[str, ...] = ("swipe", "scroll", "tap", "pinch")
WIDGETS: tuple[str, ...] = (
    "item_card", "search", "filter", "image", "reviews", "share", "fav",
    "add_to_cart", "buy_now", "coupon_centre", "back", "home_tab",
)  # fmt: skip
ACTIONS: tuple[str, ...] = ("view", "fav", "cart", "buy")

S_BROWSING, S_COMPARING, S_READY, S_LEAVING = range(4)  # state indices
P_HOME, P_FEED, P_SEARCH, P_DETAIL, P_REVIEWS, P_CART, P_COUPON = range(7)
K_SWIPE, K_SCROLL, K_TAP, K_PINCH = range(4)
W_ADD, W_BUY, W_COUPON = WIDGETS.index("add_to_cart"), WIDGETS.index("buy_now"), WIDGETS.index("coupon_centre")
A_VIEW, A_FAV, A_CART, A_BUY = range(4)

# ---------------------------------------------------------------------------------------------
# Calibration constants
# ---------------------------------------------------------------------------------------------

#: Real gesture marginals, log-normal fits (natural log: mean, population sd) over the portrait
#: (orientation 0) swipes (HMOG StrokeEvent flings) and scrolls (HMOG ScrollEvent trajectories) of
#: the 6 subjects x 24 sessions in ../shared/data/hmog. Units: duration ms; distance in screen
#: units, hypot(dx/1080, dy/1920); speed in screen units per second, hypot(vx, vy) (swipe: the fling
#: velocity Speed_X/1080, Speed_Y/1920; scroll: distance / duration).
#: Derived with ``python -m edgeintent.toolkit.data.calibration`` (keys
#: ``hmog.gesture_marginals_portrait`` and ``hmog.gesture_shape_portrait``; 6,987 swipes, 12,498 scrolls).
HMOG_MARGINALS: dict[str, dict[str, tuple[float, float]]] = {
    "swipe": {"duration_ms": (5.8769, 0.9019), "distance": (-1.9974, 1.2272), "speed": (-0.8122, 0.8673)},
    "scroll": {"duration_ms": (5.7228, 0.9757), "distance": (-2.3457, 1.1854), "speed": (-1.1648, 1.0464)},
}
#: corr(log duration, log distance), same command.
HMOG_DUR_DIST_CORR = {"swipe": 0.5714, "scroll": 0.5457}
#: Finger size: log-mean / log-sd of swipe ``size`` (same command); HMOG values are multiples of 1/510.
HMOG_SIZE_LOG = (-3.7623, 0.1321)
SIZE_STEP = 1.0 / 510.0
#: Orientation share of HMOG swipes (``hmog.gesture_shape.swipe.orientation_share``): 0, 1, 3.
ORIENTATION_P = (0.9288, 0.0690, 0.0022)
#: HMOG swipe : scroll mix over sessions with a complete stroke log (``hmog.kind_share_complete_sessions``).
HMOG_SWIPE_SHARE = 0.412
#: Cloud action mix of the Taobao UserBehavior sample (``taobao.cloud_action_mix.share``, same command).
TAOBAO_ACTION_MIX: dict[str, float] = {"view": 0.8954, "cart": 0.0525, "fav": 0.0318, "buy": 0.0203}

#: Taps and pinches (not in HMOG's stroke / scroll files): (log-mean, log-sd) guesses.
OTHER_MARGINALS: dict[str, dict[str, tuple[float, float]]] = {
    "tap": {"duration_ms": (math.log(95.0), 0.35), "distance": (math.log(0.006), 0.6)},
    "pinch": {"duration_ms": (math.log(650.0), 0.45), "distance": (math.log(0.12), 0.5)},
}

# ---------------------------------------------------------------------------------------------
# Behaviour model (rows: browsing, comparing, ready_to_buy, about_to_leave)
# ---------------------------------------------------------------------------------------------

INITIAL = np.array([0.70, 0.15, 0.04, 0.11])
TRANSITION = np.array(
    [
        [0.72, 0.16, 0.03, 0.09],
        [0.12, 0.68, 0.12, 0.08],
        [0.08, 0.16, 0.65, 0.11],
        [0.20, 0.07, 0.03, 0.70],
    ]
)
#: Page per step: home, feed, search, detail, reviews, cart, coupon_centre (coupon_centre is scaled
#: by the user's coupon sensitivity, then rows are renormalised).
PAGE_P = np.array(
    [
        [0.15, 0.42, 0.25, 0.15, 0.01, 0.01, 0.01],
        [0.03, 0.07, 0.15, 0.50, 0.22, 0.02, 0.01],
        [0.02, 0.05, 0.04, 0.40, 0.05, 0.30, 0.14],
        [0.30, 0.32, 0.10, 0.20, 0.03, 0.03, 0.02],
    ]
)
#: Median dwell per step (ms) and its log-sd.
DWELL_MEDIAN_MS = np.array([20_000.0, 35_000.0, 25_000.0, 24_000.0])
DWELL_LOG_SD = 0.6
#: Gestures per step: 1 + Poisson(rate * activity**0.5); clicks per step: Poisson(rate).
GESTURE_RATE = np.array([3.3, 3.0, 2.2, 1.9])
CLICK_RATE = np.array([0.95, 0.85, 1.05, 0.6])
#: Gesture kind per state: swipe, scroll, tap, pinch.
KIND_P = np.array(
    [
        [0.28, 0.57, 0.13, 0.02],
        [0.36, 0.32, 0.17, 0.15],
        [0.15, 0.35, 0.45, 0.05],
        [0.48, 0.35, 0.15, 0.02],
    ]
)
#: P(vertical) for swipe, scroll per state.
VERTICAL_P = np.array([[0.85, 0.95], [0.20, 0.85], [0.60, 0.90], [0.50, 0.75]])
#: P(finger moves up | vertical) per state (content scrolls down).
UP_P = np.array([0.75, 0.65, 0.55, 0.50])
#: P(a horizontal swipe is an edge "back" swipe) per state.
BACK_SWIPE_P = np.array([0.05, 0.02, 0.05, 0.55])
#: P(a tap is on the bottom buy bar) and P(on the top-left back button) per state.
TAP_BOTTOM_P = np.array([0.08, 0.10, 0.50, 0.05])
TAP_BACK_P = np.array([0.03, 0.03, 0.03, 0.30])
#: Log-space state shifts of (duration, distance) for swipes and scrolls before centring; the
#: speed shift follows as distance - duration. Swipes: extra fling-velocity shift.
SHIFT_DUR = np.array([-0.10, 0.12, 0.18, -0.22])
SHIFT_DIST = np.array([0.15, -0.03, -0.28, 0.18])
SHIFT_VEL = np.array([0.10, -0.05, -0.15, 0.15])
#: Within-state spread multiplier (about_to_leave is erratic).
STATE_SPREAD = np.array([1.0, 0.95, 0.9, 1.2])
TAP_SHIFT_DUR = np.array([0.0, 0.05, 0.2, -0.15])
#: Per-user gesture style sd (log space) of duration and distance.
USER_STYLE_SD = 0.18
#: Fling velocity: log v = mu + VEL_SLOPE * (log average speed - its mean) + state shift + noise.
VEL_SLOPE = 0.6
#: Widget per state (coupon_centre scaled by coupon sensitivity, rows renormalised).
WIDGET_P = np.array(
    [
        #  item  srch  filt  img   rev   shr   fav   add   buy   cpn   back  home
        [0.42, 0.24, 0.09, 0.03, 0.02, 0.01, 0.01, 0.01, 0.005, 0.015, 0.08, 0.05],
        [0.10, 0.05, 0.03, 0.30, 0.27, 0.08, 0.06, 0.01, 0.010, 0.020, 0.04, 0.01],
        [0.06, 0.02, 0.01, 0.06, 0.05, 0.02, 0.04, 0.08, 0.130, 0.130, 0.10, 0.03],
        [0.08, 0.05, 0.02, 0.02, 0.02, 0.01, 0.01, 0.01, 0.005, 0.020, 0.50, 0.25],
    ]
)  # add_to_cart is low here: most add_to_cart clicks come from the review-then-cart episodes
#: Cloud behaviours on detail pages: P(view on entering), P(fav), P(cart) per state.
VIEW_P = 0.92
FAV_P = np.array([0.012, 0.045, 0.04, 0.01])
CART_P = np.array([0.006, 0.025, 0.15, 0.006])
#: P(a view is of the session's focus category) per state (comparing users stay on one category).
FOCUS_P = np.array([0.30, 0.85, 0.80, 0.30])

#: Purchase model: logit = base + W[state] + sensitivity * h(amount) * M[state].
BASE_MU, BASE_SD = -5.45, 0.85
W_STATE = np.array([0.0, 1.0, 2.6, -0.8])
M_STATE = np.array([0.4, 0.8, 0.15, 1.0])
COUPON_SCALE = 5.0  # h(a) = log(1 + a / COUPON_SCALE)
SENS_SHAPE, SENS_SCALE = 2.0, 0.5
#: P(stay | no purchase) per state.
STAY_P = np.array([0.86, 0.88, 0.80, 0.18])
#: Buying step: median dwell (ms); P(cart before buy); P(the forced click is buy_now).
BUY_DWELL_MEDIAN_MS = 60_000.0
BUY_CART_P = 0.75
BUY_NOW_P = 0.45

#: Review-then-cart episodes (the cross-stream timing signal, see "Learnability"): P(a step is an
#: episode step) per state; an episode step is on the detail or reviews page and holds one extra slow
#: reading scroll and one extra add_to_cart click.
EPISODE_P = np.array([0.02, 0.30, 0.44, 0.01])
#: P(a session is "convinced"). In every episode the user reads (no touch) between the slow scroll and
#: the add_to_cart click; the pause is short in a convinced session (``EPISODE_GAP_MS``, "read the reviews,
#: then put it in the cart") and long in a hesitant one (``HESITANT_GAP_MS``). Either way the click is
#: the next touch event after the scroll, so the merged event order is the same: only the time between
#: the two streams' events differs.
CONVINCED_P = 0.4
EPISODE_GAP_MS = (300.0, 2500.0)
HESITANT_GAP_MS = (5000.0, 15000.0)
#: An episode step lasts at least this long (room for the scroll in its first 40 % and the longest pause).
EPISODE_MIN_DWELL_MS = 30_000.0
#: Logit shift at the decision for a session with at least one episode before t: convinced, hesitant.
EPISODE_SHIFT = (2.0, -2.0)
#: Logit shift at the decision of the user's next session after a convinced session with an episode
#: before its decision (they come back for the item in the cart: a long-term purchase signal).
EPISODE_CARRY = 1.0
#: The slow reading scroll: median duration (ms), median distance (screen units), log-sd of both.
SLOW_SCROLL_MS, SLOW_SCROLL_DIST, SLOW_SCROLL_LOG_SD = 750.0, 0.08, 0.35

N_CATEGORIES = 400
ITEMS_PER_CATEGORY = 5000


# ---------------------------------------------------------------------------------------------
# Config and output
# ---------------------------------------------------------------------------------------------


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
    catalogue = _catalogue(cfg.seed)
    gp = _gesture_params()
    for b in range(cfg.n_blocks):
        first = b * BLOCK_USERS + 1
        n = min(BLOCK_USERS, cfg.users - b * BLOCK_USERS)
        yield _simulate_block(cfg, b, first, n, catalogue, gp)


def _report(cfg: SimConfig, streams: dict[str, pa.Table]) -> ReadReport:
    per = {s: t.num_rows for s, t in streams.items()}
    return ReadReport(source=f"sim:{cfg.users}:{cfg.seed}", rows=sum(per.values()), per_stream=per)


# ---------------------------------------------------------------------------------------------
# Derived constants (centring of the log-space shifts)
# ---------------------------------------------------------------------------------------------


def _stationary_mix() -> np.ndarray:
    """Approximate share of steps per state: stationary chain, weighted a little to the start."""
    vals, vecs = np.linalg.eig(TRANSITION.T)
    pi = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
    pi = pi / pi.sum()
    mix = 0.7 * pi + 0.3 * INITIAL
    return mix / mix.sum()


def _gesture_state_weights() -> np.ndarray:
    """(state, kind) share of gestures of each kind coming from each state (columns sum to 1)."""
    w = _stationary_mix()[:, None] * (1.0 + GESTURE_RATE)[:, None] * KIND_P
    return w / w.sum(axis=0, keepdims=True)


def _centred(shift: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return shift - float(np.sum(shift * weights))


@dataclass(frozen=True)
class _GestureParams:
    """Log-space shifts centred on the gesture-weighted state mix, and the matching within-state spread.

    Index 0 is swipe, 1 is scroll (``dur``/``dist`` are (state, 2) arrays, ``wsd_*`` and ``rho`` (2,)).
    """

    weights: np.ndarray  # (state, kind) share of each kind's gestures coming from each state
    dur: np.ndarray
    dist: np.ndarray
    vel: np.ndarray  # (state,) extra fling-velocity shift of swipes
    tap: np.ndarray  # (state,) tap duration shift
    wsd_dur: np.ndarray
    wsd_dist: np.ndarray
    rho: np.ndarray
    vel_resid: float


def _gesture_params() -> _GestureParams:
    gw = _gesture_state_weights()
    pairs = (("swipe", K_SWIPE), ("scroll", K_SCROLL))
    dur = np.stack([_centred(SHIFT_DUR, gw[:, k]) for _, k in pairs], axis=1)
    dist = np.stack([_centred(SHIFT_DIST, gw[:, k]) for _, k in pairs], axis=1)
    vel = _centred(SHIFT_VEL, gw[:, K_SWIPE])
    tap = _centred(TAP_SHIFT_DUR, gw[:, K_TAP])

    def within_sd(total_sd: float, shifts: np.ndarray, w: np.ndarray) -> float:
        # user + state + within variance = total (within spread scaled by STATE_SPREAD)
        between = float(np.sum(w * shifts**2))
        spread2 = float(np.sum(w * STATE_SPREAD**2))
        return math.sqrt(max(total_sd**2 - between - USER_STYLE_SD**2, 0.05) / spread2)

    wsd_dur = np.array([within_sd(HMOG_MARGINALS[n]["duration_ms"][1], dur[:, i], gw[:, k]) for i, (n, k) in enumerate(pairs)])
    wsd_dist = np.array([within_sd(HMOG_MARGINALS[n]["distance"][1], dist[:, i], gw[:, k]) for i, (n, k) in enumerate(pairs)])

    def avg_speed_var(name: str) -> float:
        sd_d, sd_x = HMOG_MARGINALS[name]["duration_ms"][1], HMOG_MARGINALS[name]["distance"][1]
        return sd_d**2 + sd_x**2 - 2 * HMOG_DUR_DIST_CORR[name] * sd_d * sd_x

    rho = np.empty(2)
    for i, (name, k) in enumerate(pairs):
        # scrolls: HMOG's speed is distance / duration; swipes: the average speed implied by HMOG's
        # duration / distance correlation (their ``speed`` is the fling velocity, handled below)
        target = HMOG_MARGINALS[name]["speed"][1] ** 2 if name == "scroll" else avg_speed_var(name)
        w = gw[:, k]
        between = float(np.sum(w * (dist[:, i] - dur[:, i]) ** 2))
        spread2 = float(np.sum(w * STATE_SPREAD**2))
        a, b = wsd_dur[i], wsd_dist[i]
        # var(log speed) = between + 2 user^2 + spread2 * (a^2 + b^2 - 2 r a b)
        r = (spread2 * (a * a + b * b) + between + 2 * USER_STYLE_SD**2 - target) / (2 * spread2 * a * b)
        rho[i] = float(np.clip(r, -0.95, 0.95))
    between_v = float(np.sum(gw[:, K_SWIPE] * vel**2))
    resid2 = HMOG_MARGINALS["swipe"]["speed"][1] ** 2 - VEL_SLOPE**2 * avg_speed_var("swipe") - between_v
    return _GestureParams(gw, dur, dist, vel, tap, wsd_dur, wsd_dist, rho, math.sqrt(max(resid2, 0.01)))


# ---------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------


def _catalogue(seed: int) -> dict[str, np.ndarray]:
    """Category popularity and prices: one catalogue per seed, shared by all blocks."""
    rng = np.random.default_rng([seed, 0, 0xCA7A])
    ranks = np.arange(1, N_CATEGORIES + 1, dtype=np.float64)
    pop = ranks**-1.05
    pop = rng.permutation(pop / pop.sum())
    cat_price = np.exp(rng.normal(math.log(45.0), 0.9, N_CATEGORIES))
    return {"pop": pop, "cum": np.cumsum(pop), "price": cat_price, "ids": rng.permutation(N_CATEGORIES) * 7 + 1000}


def _draw(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (n, K) table of cumulative probabilities."""
    u = rng.random(cum.shape[0])
    idx = (u[:, None] >= cum).sum(axis=1)
    return np.minimum(idx, cum.shape[1] - 1)


def _cum(p: np.ndarray) -> np.ndarray:
    """Row-wise cumulative probabilities, normalised, with the last column exactly 1."""
    p = np.asarray(p, dtype=np.float64)
    cum = np.cumsum(p / p.sum(axis=-1, keepdims=True), axis=-1)
    cum[..., -1] = 1.0
    return cum


def _group_starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def _exclusive_cumsum_by_group(values: np.ndarray, group_counts: np.ndarray) -> np.ndarray:
    """Exclusive cumulative sum of ``values`` restarting at each group (groups are contiguous)."""
    cs = np.cumsum(values)
    ex = cs - values
    starts = _group_starts(group_counts)
    base = np.repeat(ex[starts[group_counts > 0]], group_counts[group_counts > 0])
    return ex - base


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 (wrapping arithmetic)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x


def _item_price(item_id: np.ndarray, cat_idx: np.ndarray, catalogue: dict[str, np.ndarray]) -> np.ndarray:
    u = (_mix64(item_id) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    price = catalogue["price"][cat_idx] * np.exp(1.2 * (u - 0.5))
    return np.maximum(np.round(price, 2), 0.01)


def _markov(rng: np.random.Generator, start: np.ndarray, n_steps: int) -> np.ndarray:
    """(n, n_steps) chain continuing from ``start`` (the state before column 0)."""
    cum = _cum(TRANSITION)
    out = np.empty((start.size, n_steps), dtype=np.int8)
    prev = start
    for k in range(n_steps):
        prev = _draw(rng, cum[prev]).astype(np.int8)
        out[:, k] = prev
    return out


def _simulate_block(
    cfg: SimConfig, block: int, first_user: int, n_users: int, catalogue: dict, gp: _GestureParams
) -> SimData:
    rng = np.random.default_rng([cfg.seed, block])
    amounts = np.asarray(cfg.amounts, dtype=np.float64)
    K = amounts.size

    # -- users --------------------------------------------------------------------------------
    user_ids = np.arange(first_user, first_user + n_users, dtype=np.int64)
    base = rng.normal(BASE_MU, BASE_SD, n_users)
    sens = rng.gamma(SENS_SHAPE, SENS_SCALE, n_users)
    activity = np.exp(rng.normal(0.0, 0.4, n_users))
    style_dur = rng.normal(0.0, USER_STYLE_SD, n_users)
    style_dist = rng.normal(0.0, USER_STYLE_SD, n_users)
    size_base = rng.normal(HMOG_SIZE_LOG[0], HMOG_SIZE_LOG[1] * 0.6, n_users)
    prefs = np.searchsorted(catalogue["cum"], rng.random((n_users, 3)) * catalogue["cum"][-1])
    prefs = np.minimum(prefs, N_CATEGORIES - 1)

    # -- sessions -----------------------------------------------------------------------------
    n_sess = 1 + rng.poisson(cfg.sessions_per_user * activity)
    S = int(n_sess.sum())
    s_user = np.repeat(np.arange(n_users), n_sess)
    n_pre = 2 + rng.poisson(cfg.steps_before_decision, S)
    s_orient = np.array([0, 1, 3])[_draw(rng, np.broadcast_to(_cum(ORIENTATION_P), (S, 3)))]
    s_focus = prefs[s_user, rng.integers(0, 3, S)]

    # pre-decision chain
    max_pre = int(n_pre.max())
    pre = np.empty((S, max_pre), dtype=np.int8)
    pre[:, 0] = _draw(rng, np.broadcast_to(_cum(INITIAL), (S, 4)))
    if max_pre > 1:
        pre[:, 1:] = _markov(rng, pre[:, 0], max_pre - 1)
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

    # decision: offer, potential outcomes, realised path
    probs = cfg.probs
    offer_idx = _draw(rng, np.broadcast_to(_cum(probs), (S, K)))
    h = np.log1p(amounts / COUPON_SCALE)
    logit = (base[s_user] + W_STATE[dec_state])[:, None] + (sens[s_user] * M_STATE[dec_state])[:, None] * h[None, :]
    logit = logit + ep_shift[:, None]  # the episode signal (not a coupon response)
    p_buy = 1.0 / (1.0 + np.exp(-logit))
    u = rng.random(S)
    buy = u[:, None] < p_buy
    bought = buy[np.arange(S), offer_idx]
    stay = bought | (rng.random(S) < STAY_P[dec_state])

    # post-decision steps: buyers get a buying step then Poisson(1.5) more; stayers 1 + Poisson(2.5)
    n_post = np.where(bought, 1 + rng.poisson(1.5, S), np.where(stay, 1 + rng.poisson(2.5, S), 0))
    max_post = int(n_post.max()) if S else 0
    post = np.zeros((S, max(max_post, 1)), dtype=np.int8)
    if max_post:
        start = np.where(bought, S_READY, dec_state)
        post[:, :max_post] = _markov(rng, start, max_post)
        post[bought, 0] = S_READY  # the buying step

    # -- steps (session-major, pre before post) -----------------------------------------------
    post_mask = np.arange(post.shape[1])[None, :] < n_post[:, None]
    post_ep = post_mask & (rng.random(post.shape) < EPISODE_P[post])
    n_steps = n_pre + n_post
    st_sess = np.concatenate([np.nonzero(pre_mask)[0], np.nonzero(post_mask)[0]])
    st_state = np.concatenate([pre[pre_mask], post[post_mask]]).astype(np.int64)
    st_post = np.concatenate([np.zeros(int(pre_mask.sum()), bool), np.ones(int(post_mask.sum()), bool)])
    post_first = np.zeros(post.shape, bool)
    post_first[:, 0] = True
    st_first_post = np.concatenate([np.zeros(int(pre_mask.sum()), bool), post_first[post_mask]])
    st_ep = np.concatenate([pre_ep[pre_mask], post_ep[post_mask]])
    order = np.argsort(st_sess, kind="stable")
    st_sess, st_state, st_post, st_first_post = st_sess[order], st_state[order], st_post[order], st_first_post[order]
    st_buy = st_first_post & bought[st_sess]
    st_ep = st_ep[order] & ~st_buy
    st_user = s_user[st_sess]
    n_st = st_sess.size

    # page
    page_p = PAGE_P[st_state].copy()
    page_p[:, P_COUPON] *= sens[st_user]
    page_cum = _cum(page_p)
    st_page = _draw(rng, page_cum)
    st_page[st_buy] = np.where(rng.random(int(st_buy.sum())) < 0.6, P_CART, P_DETAIL)
    st_page[st_ep] = np.where(rng.random(int(st_ep.sum())) < 0.5, P_REVIEWS, P_DETAIL)

    # dwell
    dwell = DWELL_MEDIAN_MS[st_state] * np.exp(rng.normal(0.0, DWELL_LOG_SD, n_st))
    dwell[st_buy] = BUY_DWELL_MEDIAN_MS * np.exp(rng.normal(0.0, 0.5, int(st_buy.sum())))
    dwell = np.clip(dwell, 2_000.0, 600_000.0)
    dwell[st_ep] = np.maximum(dwell[st_ep], EPISODE_MIN_DWELL_MS)
    dwell[st_buy] = np.minimum(dwell[st_buy], cfg.rt_horizon_ms)
    dwell = np.round(dwell).astype(np.int64)

    st_start_rel = _exclusive_cumsum_by_group(dwell, n_steps)
    # decision t relative to the session start = total dwell of the pre steps
    sess_first = _group_starts(n_steps)
    pre_dwell = np.add.reduceat(np.where(st_post, 0, dwell), sess_first) if S else np.zeros(0, np.int64)
    sess_len = np.add.reduceat(dwell, sess_first) if S else np.zeros(0, np.int64)

    # session start times: first within 2 days of start_ms, then gaps of hours to days
    gap = cfg.min_gap_ms + np.round(HOUR_MS * 8.0 * np.exp(rng.normal(0.0, 1.0, S))).astype(np.int64)
    first_start = cfg.start_ms + rng.integers(0, 2 * 24 * HOUR_MS, n_users)
    s_start = first_start[s_user] + _exclusive_cumsum_by_group(sess_len + gap, n_sess)
    t_ms = s_start + pre_dwell
    st_start = s_start[st_sess] + st_start_rel

    # -- gestures -----------------------------------------------------------------------------
    g_count = 1 + rng.poisson(GESTURE_RATE[st_state] * np.sqrt(activity[st_user])) + st_ep
    g_first = _group_starts(g_count)  # an episode step's slow reading scroll is its first gesture
    g_slow = np.zeros(int(g_count.sum()), bool)
    g_slow[g_first[st_ep]] = True
    gestures = _gestures(rng, gp, np.repeat(np.arange(n_st), g_count), st_state, st_page, st_start, dwell, st_user,
                         style_dur, style_dist, size_base, s_orient[st_sess], g_slow)  # fmt: skip
    gestures["user_id"] = user_ids[gestures.pop("_user")]

    # -- clicks -------------------------------------------------------------------------------
    c_count = rng.poisson(CLICK_RATE[st_state])
    c_step = np.repeat(np.arange(n_st), c_count)
    wp = WIDGET_P[st_state[c_step]].copy()
    wp[:, W_COUPON] *= sens[st_user[c_step]]
    c_widget = _draw(rng, _cum(wp))
    c_ts = st_start[c_step] + 1 + np.floor(rng.random(c_step.size) * (dwell[c_step] - 1)).astype(np.int64)
    # the buying step's add_to_cart / buy_now click, in its first half
    b_steps = np.nonzero(st_buy)[0]
    b_widget = np.where(rng.random(b_steps.size) < BUY_NOW_P, W_BUY, W_ADD)
    b_ts = st_start[b_steps] + 1 + np.floor(rng.random(b_steps.size) * 0.5 * (dwell[b_steps] - 2)).astype(np.int64)
    # the episode steps' add_to_cart click after a reading pause: 0.3-2.5 s after the slow scroll ends in
    # convinced sessions, 5-15 s in hesitant ones (capped inside the step)
    e_steps = np.nonzero(st_ep)[0]
    e_start = gestures["ts_ms"][g_first[e_steps]]
    e_end = e_start + gestures["duration_ms"][g_first[e_steps]].astype(np.int64)
    lo_hi = np.where(convinced[st_sess[e_steps]][:, None], np.array(EPISODE_GAP_MS), np.array(HESITANT_GAP_MS))
    gap = np.round(lo_hi[:, 0] + (lo_hi[:, 1] - lo_hi[:, 0]) * rng.random(e_steps.size)).astype(np.int64)
    e_ts = np.minimum(e_end + gap, st_start[e_steps] + dwell[e_steps] - 1)
    # no touch during the pause: the step's other gestures that fell in [scroll start, click] are moved,
    # uniformly over the rest of the step
    g_step = np.repeat(np.arange(n_st), g_count)
    pause_lo = np.full(n_st, -1, np.int64)
    pause_hi = np.full(n_st, -1, np.int64)
    pause_lo[e_steps], pause_hi[e_steps] = e_start, e_ts
    ts = gestures["ts_ms"]
    move = (ts >= pause_lo[g_step]) & (ts <= pause_hi[g_step]) & ~g_slow
    mv = g_step[move]
    width = pause_hi[mv] - pause_lo[mv] + 1
    new = st_start[mv] + 1 + np.floor(rng.random(mv.size) * (dwell[mv] - 1 - width)).astype(np.int64)
    ts[move] = np.where(new >= pause_lo[mv], new + width, new)
    c_step = np.concatenate([c_step, b_steps, e_steps])
    clicks = {
        "user_id": user_ids[st_user[c_step]],
        "ts_ms": np.concatenate([c_ts, b_ts, e_ts]),
        "widget": np.concatenate([c_widget, b_widget, np.full(e_steps.size, W_ADD)]),
        "page": st_page[c_step],
    }

    # -- cloud --------------------------------------------------------------------------------
    detail = st_page == P_DETAIL
    has_view = detail & (rng.random(n_st) < VIEW_P)
    has_fav = detail & (rng.random(n_st) < FAV_P[st_state]) & ~st_buy
    has_cart = detail & (rng.random(n_st) < CART_P[st_state]) & ~st_buy
    buy_cart = st_buy & (rng.random(n_st) < BUY_CART_P)
    # one item per step: the focus category with FOCUS_P, else a preferred or a popular category
    r = rng.random(n_st)
    pref_cat = prefs[st_user, rng.integers(0, 3, n_st)]
    pop_cat = np.minimum(np.searchsorted(catalogue["cum"], rng.random(n_st) * catalogue["cum"][-1]), N_CATEGORIES - 1)
    focus_p = np.where(st_buy, 1.0, FOCUS_P[st_state])
    st_cat = np.where(r < focus_p, s_focus[st_sess], np.where(r < focus_p + (1 - focus_p) * 0.7, pref_cat, pop_cat))
    st_item = catalogue["ids"][st_cat].astype(np.int64) * 100_000 + np.floor(
        ITEMS_PER_CATEGORY * rng.random(n_st) ** 3
    ).astype(np.int64) + 1
    span = dwell - 2
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
    cloud = {
        "user_id": user_ids[st_user[cl_step]],
        "ts_ms": np.concatenate([p[2] for p in ev_parts]),
        "action": np.concatenate([p[1] for p in ev_parts]),
        "item_id": st_item[cl_step],
        "category_id": catalogue["ids"][st_cat[cl_step]].astype(np.int64),
        "price": _item_price(st_item[cl_step], st_cat[cl_step], catalogue),
    }

    streams = {
        "gesture": _table("gesture", gestures, {"kind": KINDS, "page": PAGES}),
        "click": _table("click", clicks, {"widget": WIDGETS, "page": PAGES}),
        "cloud": _table("cloud", cloud, {"action": ACTIONS}),
    }
    events = EventLog(streams, _report(cfg, streams))

    # -- decisions ----------------------------------------------------------------------------
    dec = pa.table(
        {
            "user_id": pa.array(user_ids[s_user], pa.int64()),
            "t_ms": pa.array(t_ms, pa.int64()),
            "offer": pa.array(amounts[offer_idx], pa.float64()),
            "propensity": pa.array(probs[offer_idx], pa.float64()),
            "state": pa.array(np.asarray(STATES, dtype=object)[dec_state], pa.string()),
            "coupon_sensitivity": pa.array(sens[s_user], pa.float64()),
            "p_buy": pa.FixedSizeListArray.from_arrays(pa.array(p_buy.ravel(), pa.float64()), K),
            "buy": pa.FixedSizeListArray.from_arrays(pa.array(buy.ravel(), pa.bool_()), K),
        }
    )
    meta = {
        "amounts": json.dumps(list(cfg.amounts)),
        "offer_probs": json.dumps([float(p) for p in probs]),
        "rt_horizon_ms": json.dumps(int(cfg.rt_horizon_ms)),
        "simulator": json.dumps(cfg.to_dict()),
    }
    dec = dec.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
    return SimData(events=events, decisions=dec, config=cfg)


def _gestures(
    rng: np.random.Generator,
    gp: _GestureParams,
    g_step: np.ndarray,
    st_state: np.ndarray,
    st_page: np.ndarray,
    st_start: np.ndarray,
    dwell: np.ndarray,
    st_user: np.ndarray,
    style_dur: np.ndarray,
    style_dist: np.ndarray,
    size_base: np.ndarray,
    st_orient: np.ndarray,
    slow: np.ndarray,
) -> dict[str, np.ndarray]:
    """Gestures of the steps ``g_step``; ``slow`` marks episodes' slow reading scrolls (vertical, finger
    up, long and short, started in the first 10-70 % of the step)."""
    n = g_step.size
    state = st_state[g_step]
    user = st_user[g_step]
    kind = np.where(slow, K_SCROLL, _draw(rng, _cum(KIND_P)[state]))
    frac = rng.random(n)
    frac = np.where(slow, 0.1 + 0.3 * frac, frac)
    ts = st_start[g_step] + 1 + np.floor(frac * (dwell[g_step] - 1)).astype(np.int64)

    z1, z2, z3 = rng.standard_normal((3, n))
    log_dur = np.empty(n)
    log_dist = np.empty(n)
    log_vel = np.zeros(n)
    spread = STATE_SPREAD[state]
    for i, (kname, k) in enumerate((("swipe", K_SWIPE), ("scroll", K_SCROLL))):
        m = kind == k
        st = state[m]
        rho = gp.rho[i]
        e_dur = gp.wsd_dur[i] * spread[m] * z1[m]
        e_dist = gp.wsd_dist[i] * spread[m] * (rho * z1[m] + math.sqrt(1 - rho * rho) * z2[m])
        log_dur[m] = HMOG_MARGINALS[kname]["duration_ms"][0] + gp.dur[st, i] + style_dur[user[m]] + e_dur
        log_dist[m] = HMOG_MARGINALS[kname]["distance"][0] + gp.dist[st, i] + style_dist[user[m]] + e_dist
    # fling velocity of swipes: follows the average speed (slope VEL_SLOPE) plus a state shift
    m = kind == K_SWIPE
    sw = HMOG_MARGINALS["swipe"]
    mu_avg = sw["distance"][0] - sw["duration_ms"][0] + math.log(1000.0)
    la = log_dist[m] - log_dur[m] + math.log(1000.0)
    log_vel[m] = sw["speed"][0] + VEL_SLOPE * (la - mu_avg) + gp.vel[state[m]] + gp.vel_resid * z3[m]
    log_dur[slow] = math.log(SLOW_SCROLL_MS) + 0.5 * style_dur[user[slow]] + SLOW_SCROLL_LOG_SD * z1[slow]
    log_dist[slow] = math.log(SLOW_SCROLL_DIST) + 0.5 * style_dist[user[slow]] + SLOW_SCROLL_LOG_SD * z2[slow]
    for kname, k in (("tap", K_TAP), ("pinch", K_PINCH)):
        m = kind == k
        md, sd = OTHER_MARGINALS[kname]["duration_ms"]
        mx, sx = OTHER_MARGINALS[kname]["distance"]
        shift = gp.tap[state[m]] if k == K_TAP else 0.0
        log_dur[m] = md + shift + 0.5 * style_dur[user[m]] + sd * z1[m]
        log_dist[m] = mx + 0.5 * style_dist[user[m]] + sx * z2[m]
    duration = np.maximum(np.exp(log_dur), 10.0)
    dist = np.minimum(np.exp(log_dist), 0.95)

    # direction
    is_move = (kind == K_SWIPE) | (kind == K_SCROLL)
    col = np.where(kind == K_SCROLL, 1, 0)
    vertical = is_move & ((rng.random(n) < VERTICAL_P[state, col]) | slow)
    up = (rng.random(n) < UP_P[state]) | slow
    horizontal = is_move & ~vertical
    back = horizontal & (kind == K_SWIPE) & (rng.random(n) < BACK_SWIPE_P[state])
    theta = rng.uniform(-math.pi, math.pi, n)  # taps and pinches: any direction
    jitter = rng.normal(0.0, 1.0, n)
    theta = np.where(vertical, np.where(up, -math.pi / 2, math.pi / 2) + 0.18 * jitter, theta)
    right = rng.random(n) < 0.5
    theta = np.where(horizontal, np.where(right | back, 0.0, math.pi) + 0.15 * jitter, theta)
    dx = np.clip(dist * np.cos(theta), -0.95, 0.95)
    dy = np.clip(dist * np.sin(theta), -0.95, 0.95)

    # start point: inside the feasible range so that the end point is on screen
    lo_x, hi_x = np.maximum(0.0, -dx), np.minimum(1.0, 1.0 - dx)
    lo_y, hi_y = np.maximum(0.0, -dy), np.minimum(1.0, 1.0 - dy)
    bx, by = rng.beta(2.0, 2.0, n), rng.beta(2.0, 2.0, n)
    x0 = lo_x + bx * (hi_x - lo_x)
    y0 = lo_y + by * (hi_y - lo_y)
    x0 = np.where(back, 0.03 * rng.random(n), x0)
    tap = kind == K_TAP
    r = rng.random(n)
    bottom = tap & (r < TAP_BOTTOM_P[state])
    backbtn = tap & ~bottom & (r < TAP_BOTTOM_P[state] + TAP_BACK_P[state])
    y0 = np.where(bottom, 0.90 + 0.07 * by, y0)
    x0 = np.where(backbtn, 0.02 + 0.10 * bx, x0)
    y0 = np.where(backbtn, 0.01 + 0.05 * by, y0)
    x0 = np.clip(x0, np.maximum(0.0, -dx), np.minimum(1.0, 1.0 - dx))
    y0 = np.clip(y0, np.maximum(0.0, -dy), np.minimum(1.0, 1.0 - dy))
    x1 = np.clip(x0 + dx, 0.0, 1.0)
    y1 = np.clip(y0 + dy, 0.0, 1.0)
    dist_real = np.hypot(x1 - x0, y1 - y0)

    # velocity: fling velocity along the displacement for swipes, average velocity otherwise
    speed = np.where(kind == K_SWIPE, np.exp(log_vel), dist_real / duration * 1000.0)
    norm = np.maximum(dist_real, 1e-9)
    vx = speed * (x1 - x0) / norm
    vy = speed * (y1 - y0) / norm

    size = np.exp(size_base[user] + rng.normal(0.0, HMOG_SIZE_LOG[1] * 0.8, n))
    size = np.maximum(np.round(size / SIZE_STEP), 1.0) * SIZE_STEP

    return {
        "_user": user,
        "ts_ms": ts,
        "kind": kind,
        "x0": x0,
        "y0": y0,
        "x1": x1,
        "y1": y1,
        "duration_ms": np.round(duration),
        "vx": vx,
        "vy": vy,
        "pressure": np.ones(n),
        "size": size,
        "page": st_page[g_step],
        "orientation": st_orient[g_step].astype(np.int64),
    }


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
