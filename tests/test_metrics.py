from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import ks_2samp
from sklearn.calibration import calibration_curve as sk_calibration_curve
from sklearn.metrics import log_loss, roc_auc_score

from edgeintent.toolkit.training import metrics as M


def _data(n: int, seed: int = 0, strength: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    p = 1.0 / (1.0 + np.exp(-strength * z))
    y = (rng.random(n) < p).astype(np.int8)
    return y, p


def _correlated(users: int, rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of one user share the label and most of the score: a user is one piece of evidence."""
    rng = np.random.default_rng(seed)
    y_user = (rng.random(users) < 0.5).astype(np.int8)
    s_user = y_user * 0.6 + rng.normal(0, 0.5, users)
    g = np.repeat(np.arange(users), rows)
    y = y_user[g]
    p = 1.0 / (1.0 + np.exp(-(s_user[g] + rng.normal(0, 0.05, len(g)))))
    return y, p, g


# --- exact values on hand-made inputs -------------------------------------------------------


def test_perfect_and_reversed_ranking():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    assert M.auc(y, p) == 1.0
    assert M.ks(y, p) == 1.0
    assert M.auc(y, 1 - p) == 0.0
    assert M.ks(y, 1 - p) == 0.0  # TPR − FPR never rises above the start (0, 0)


def test_hand_computed_auc_and_ks_with_ties():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    # pairs (pos, neg): 0.35>0.1 win, 0.35<0.4 loss, 0.8 beats both → 3/4
    assert M.auc(y, p) == pytest.approx(0.75)
    # thresholds 0.8: TPR .5 FPR 0; 0.4: .5/.5; 0.35: 1/.5; → max .5
    assert M.ks(y, p) == pytest.approx(0.5)
    # all scores tied: each pair counts one half
    assert M.auc(y, np.full(4, 0.3)) == pytest.approx(0.5)
    assert M.ks(y, np.full(4, 0.3)) == pytest.approx(0.0)


def test_undefined_values_are_nan():
    assert math.isnan(M.auc([1, 1, 1], [0.2, 0.5, 0.9]))
    assert math.isnan(M.ks([0, 0], [0.2, 0.5]))
    assert math.isnan(M.auc([], []))
    assert math.isnan(M.logloss([], []))
    assert math.isnan(M.ece([], []))
    assert math.isnan(M.positive_rate([]))
    # one class is fine for the log loss
    assert M.logloss([1, 1], [0.5, 0.5]) == pytest.approx(math.log(2))


def test_logloss_by_hand_and_clipping():
    assert M.logloss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    worst = M.logloss([0, 1], [1.0, 0.0])
    assert math.isfinite(worst)
    assert worst == pytest.approx(-math.log(M.EPS), rel=1e-6)


def test_ece_zero_for_perfectly_calibrated_bins():
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0] + [1, 1, 1, 0])
    assert M.ece(y, p) == pytest.approx(0.0, abs=1e-12)


def test_ece_by_hand():
    # bin (0, .1]: mean y .5 vs p .1 → .4 weighted 2/4; bin (.8, .9]: mean y 0 vs .9 → .9 weighted 2/4
    assert M.ece([1, 0, 0, 0], [0.1, 0.1, 0.9, 0.9]) == pytest.approx(0.2 + 0.45)


def test_ece_bins_are_right_closed_like_sklearn():
    # 0.5 belongs to the first of two bins ((0, .5], (.5, 1]): (|0 − .5| + |1 − .9|) / 2 = .3
    # (left-closed bins would pool both: |.5 − .7| = .2)
    assert M.ece([0, 1], [0.5, 0.9], n_bins=2) == pytest.approx(0.3)
    frac, mean_p = M.calibration_curve(np.array([0, 1]), np.array([0.5, 0.9]), n_bins=2)
    np.testing.assert_allclose(mean_p, [0.5, 0.9])
    # 0 and 1 land in the first and last bins
    assert M.ece([0, 1], [0.0, 1.0], n_bins=3) == pytest.approx(0.0)


@pytest.mark.parametrize("n_bins", [1, 5, 10, 15])
def test_ece_matches_a_naive_loop(n_bins):
    y, p = _data(500, seed=n_bins)
    p = np.round(p, 2)  # put values exactly on bin edges
    total = 0.0
    for m in range(n_bins):
        lo, hi = m / n_bins, (m + 1) / n_bins
        sel = (p > lo) & (p <= hi) if m > 0 else (p <= hi)
        if sel.any():
            total += sel.sum() / len(p) * abs(y[sel].mean() - p[sel].mean())
    assert M.ece(y, p, n_bins) == pytest.approx(total, abs=1e-12)


# --- agreement with references ----------------------------------------------------------------


def test_agrees_with_sklearn_and_scipy():
    y, p = _data(400, seed=3)
    assert M.auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert M.logloss(y, p) == pytest.approx(log_loss(y, p), abs=1e-12)
    # KS of the two score distributions (scipy) equals max(TPR − FPR) when positives score higher
    assert M.ks(y, p) == pytest.approx(ks_2samp(p[y == 1], p[y == 0]).statistic, abs=1e-12)
    frac, mean_p = M.calibration_curve(y, p, n_bins=8)
    ref_frac, ref_mean = sk_calibration_curve(y, p, n_bins=8)
    np.testing.assert_array_equal(frac, ref_frac)
    np.testing.assert_array_equal(mean_p, ref_mean)
    assert M.positive_rate(y) == pytest.approx(y.mean())


def test_input_checks():
    with pytest.raises(ValueError, match="0/1"):
        M.auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        M.auc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="equal length"):
        M.auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.ece([0, 1], [0.1, 1.2])
    # (n, 1) model outputs and bool labels are accepted
    assert M.auc(np.array([False, True]), np.array([[0.1], [0.9]])) == 1.0


# --- bootstrap --------------------------------------------------------------------------------


def test_ci_contains_estimate_and_narrows_with_more_data():
    y_small, p_small = _data(200, seed=1)
    y_big, p_big = _data(5000, seed=1)
    lo_s, hi_s = M.bootstrap_ci(M.auc, y_small, p_small)
    lo_b, hi_b = M.bootstrap_ci(M.auc, y_big, p_big)
    assert lo_s <= M.auc(y_small, p_small) <= hi_s
    assert lo_b <= M.auc(y_big, p_big) <= hi_b
    assert (hi_b - lo_b) < 0.4 * (hi_s - lo_s)  # width ~ 1/sqrt(n): expect ~0.2
    lo90, hi90 = M.bootstrap_ci(M.auc, y_small, p_small, alpha=0.10)
    assert lo_s <= lo90 <= hi90 <= hi_s


def test_bootstrap_is_deterministic_for_a_seed():
    y, p, g = _correlated(30, 5)
    for groups in (None, g):
        a = M.bootstrap_ci(M.auc, y, p, seed=7, groups=groups)
        assert a == M.bootstrap_ci(M.auc, y, p, seed=7, groups=groups)
        assert a != M.bootstrap_ci(M.auc, y, p, seed=8, groups=groups)


@pytest.mark.parametrize("grouped", [False, True])
def test_vectorised_auc_path_equals_generic_loop(grouped):
    y, p, g = _correlated(40, 6, seed=2)
    p = np.round(p, 2)  # ties
    groups = g if grouped else None
    fast = M.bootstrap_values(M.auc, y, p, n_boot=60, seed=3, groups=groups)
    slow = M.bootstrap_values(lambda a, b: M.auc(a, b), y, p, n_boot=60, seed=3, groups=groups)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_group_bootstrap_resamples_whole_users():
    _, _, g = _correlated(10, 4)
    g = np.random.default_rng(0).permutation(g)  # rows of a user need not be adjacent
    rng = np.random.default_rng(0)
    for idx, rid, k in M._resamples(len(g), g, 5, rng):
        for b in range(k):
            counts = np.bincount(g[idx[rid == b]], minlength=10)
            assert (counts % 4 == 0).all()  # each user contributes all 4 rows, or a multiple
            assert counts.sum() == len(g)  # 10 users drawn, 4 rows each


def test_group_bootstrap_is_wider_on_correlated_rows():
    y, p, g = _correlated(40, 25)
    lo_r, hi_r = M.bootstrap_ci(M.auc, y, p)
    lo_g, hi_g = M.bootstrap_ci(M.auc, y, p, groups=g)
    # 1000 rows but only 40 independent users: row resampling overstates the evidence ~5x
    assert (hi_g - lo_g) > 2.5 * (hi_r - lo_r)
    assert lo_g <= M.auc(y, p) <= hi_g


def test_single_class_resamples_are_skipped():
    y = np.zeros(30, np.int8)
    y[0] = 1
    p = np.linspace(0, 1, 30)
    vals = M.bootstrap_values(M.auc, y, p, n_boot=200)
    assert 0 < len(vals) < 200  # ~ (1 − 1/30)^30 ≈ 36% of resamples miss the positive
    assert np.isfinite(vals).all()
    generic = M.bootstrap_values(lambda a, b: M.logloss(a, b), y, p, n_boot=200)
    assert len(generic) == len(vals)  # the same resamples are skipped for every metric
    assert all(math.isnan(v) for v in M.bootstrap_ci(M.auc, np.ones(5), np.linspace(0, 1, 5)))


# --- reports and plots --------------------------------------------------------------------------


def test_task_report_values_and_json():
    y, p = _data(300, seed=4)
    g = np.arange(300) // 3
    r = M.task_report(y, p, groups=g, n_boot=50)
    assert r["n"] == 300 and r["positives"] == int(y.sum()) and r["groups"] == 100
    assert r["rate"] == pytest.approx(y.mean())
    assert r["auc"] == pytest.approx(roc_auc_score(y, p))
    assert r["ks"] == M.ks(y, p) and r["logloss"] == M.logloss(y, p) and r["ece"] == M.ece(y, p)
    assert list(r["auc_ci"]) == list(M.bootstrap_ci(M.auc, y, p, n_boot=50, groups=g))
    assert json.loads(json.dumps(r)) == r  # plain JSON types only


def test_report_counts_only_observed_labels():
    y, p = _data(400, seed=5)
    observed = np.ones(400, bool)
    observed[:100] = False
    # unobserved rows are labelled 0 but scored high: counted, they would hurt the AUC
    y_biased = y.copy()
    y_biased[:100] = 0
    p_biased = p.copy()
    p_biased[:100] = 0.99
    labels = {"buy_rt": y_biased, "stay": y_biased}
    probs = {"buy_rt": p_biased, "stay": p_biased.reshape(-1, 1)}
    out = M.report(labels, probs, {"buy_rt": observed}, n_boot=20)
    assert out["buy_rt"]["n"] == 300
    assert out["buy_rt"]["auc"] == pytest.approx(roc_auc_score(y[100:], p[100:]))
    assert out["stay"]["n"] == 400  # no mask for this task: every row counts
    assert out["stay"]["auc"] < out["buy_rt"]["auc"]
    with pytest.raises(ValueError, match="no labels"):
        M.report({}, {"buy_rt": p})


def test_plot_writes_one_png_atomically(tmp_path):
    y, p = _data(200, seed=6)
    path = M.plot_roc_calibration({"buy_rt": y, "stay": np.ones(200)}, {"buy_rt": p, "stay": p}, tmp_path / "roc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["roc.png"]  # no temp file left
