"""The simulator's parameters: vocabularies, calibration constants and the behaviour model.

Everything here is a constant the generator reads; nothing is drawn. Calibration constants carry the
command that measured them (``python -m edgeintent.toolkit.data.calibration``); the behaviour model's
tables have one row per intent state (browsing, comparing, ready_to_buy, about_to_leave). What each
parameter does is described in docs/simulator.md.
"""

from __future__ import annotations

import math

import numpy as np

HOUR_MS = 3600 * 1000

# ---------------------------------------------------------------------------------------------
# Vocabularies and their indices
# ---------------------------------------------------------------------------------------------

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

#: Review-then-cart episodes (the cross-stream timing signal, see docs/simulator.md): P(a step is an
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
