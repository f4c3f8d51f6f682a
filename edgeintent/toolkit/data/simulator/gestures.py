"""Touch gestures: kind, timing, shape, direction, position, velocity and finger size per gesture.

Swipes and scrolls follow log-normal fits of HMOG's portrait gestures (``HMOG_MARGINALS``): state and
user shifts are in log space, centred on the gesture-weighted state mix (:func:`gesture_params`), with
the within-state spread reduced so that the overall marginals stay near the real ones. Taps and
pinches use ``OTHER_MARGINALS``. For swipes ``(vx, vy)`` is the fling velocity along the displacement
(HMOG's ``Speed_X/Y``); for scrolls, taps and pinches it is the average velocity (displacement /
duration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeintent.toolkit.data.simulator.parameters import (
    BACK_SWIPE_P,
    GESTURE_RATE,
    HMOG_DUR_DIST_CORR,
    HMOG_MARGINALS,
    HMOG_SIZE_LOG,
    INITIAL,
    K_PINCH,
    K_SCROLL,
    K_SWIPE,
    K_TAP,
    KIND_P,
    OTHER_MARGINALS,
    SHIFT_DIST,
    SHIFT_DUR,
    SHIFT_VEL,
    SIZE_STEP,
    SLOW_SCROLL_DIST,
    SLOW_SCROLL_LOG_SD,
    SLOW_SCROLL_MS,
    STATE_SPREAD,
    TAP_BACK_P,
    TAP_BOTTOM_P,
    TAP_SHIFT_DUR,
    TRANSITION,
    UP_P,
    USER_STYLE_SD,
    VEL_SLOPE,
    VERTICAL_P,
)
from edgeintent.toolkit.data.simulator.sampling import cum, draw

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
class GestureParams:
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


def gesture_params() -> GestureParams:
    """The centred shifts and within-state spreads that keep the gesture marginals near HMOG's."""
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
    return GestureParams(gw, dur, dist, vel, tap, wsd_dur, wsd_dist, rho, math.sqrt(max(resid2, 0.01)))


# ---------------------------------------------------------------------------------------------
# Generation (the order of the helpers below is the order of the draws)
# ---------------------------------------------------------------------------------------------


def gestures(
    rng: np.random.Generator,
    gp: GestureParams,
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
    """Gestures of the steps ``g_step`` (one entry per gesture, ``st_*`` indexed by step, ``style_*`` and
    ``size_base`` by user); ``slow`` marks episodes' slow reading scrolls (vertical, finger up, long and
    short, started in the first 10-40 % of the step). Columns of the gesture stream plus ``_user``."""
    n = g_step.size
    state = st_state[g_step]
    user = st_user[g_step]
    kind = np.where(slow, K_SCROLL, draw(rng, cum(KIND_P)[state]))
    frac = rng.random(n)
    frac = np.where(slow, 0.1 + 0.3 * frac, frac)
    ts = st_start[g_step] + 1 + np.floor(frac * (dwell[g_step] - 1)).astype(np.int64)

    z1, z2, z3 = rng.standard_normal((3, n))
    log_dur, log_dist, log_vel = _log_shape(gp, kind, state, user, style_dur, style_dist, slow, z1, z2, z3)
    duration = np.maximum(np.exp(log_dur), 10.0)
    dist = np.minimum(np.exp(log_dist), 0.95)
    dx, dy, back = _displacement(rng, kind, state, dist, slow)
    x0, y0, x1, y1 = _positions(rng, kind, state, dx, dy, back)
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


def _log_shape(
    gp: GestureParams,
    kind: np.ndarray,
    state: np.ndarray,
    user: np.ndarray,
    style_dur: np.ndarray,
    style_dist: np.ndarray,
    slow: np.ndarray,
    z1: np.ndarray,
    z2: np.ndarray,
    z3: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log duration (ms), log distance (screen units) and, for swipes, log fling velocity, from the
    standard normals ``z1, z2, z3`` (no draws)."""
    n = kind.size
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
    return log_dur, log_dist, log_vel


def _displacement(
    rng: np.random.Generator, kind: np.ndarray, state: np.ndarray, dist: np.ndarray, slow: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dy) of each gesture and whether it is an edge "back" swipe: swipes and scrolls mostly along an
    axis (state-dependent vertical / up shares), taps and pinches in any direction."""
    n = kind.size
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
    return dx, dy, back


def _positions(
    rng: np.random.Generator, kind: np.ndarray, state: np.ndarray, dx: np.ndarray, dy: np.ndarray, back: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Start and end points on screen: the start inside the range that keeps the end on screen; back swipes
    start at the left edge, some taps hit the bottom buy bar or the top-left back button."""
    n = kind.size
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
    return x0, y0, x1, y1
