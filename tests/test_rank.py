"""The rank stage: profile rule, scorers, bundle, device export + parity, CLI bad input."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from click.testing import CliRunner

from edgeintent.errors import BundleError, DataError, ExportError
from edgeintent.rank import RankConfig
from edgeintent.rank.profile import HOUR_MS, DecayRule, Profile, replay_trace

SRC = "sim:300:1"


def rule(v: int = 10, hl: float = 72.0, threshold: float = 0.05, capacity: int = 64) -> DecayRule:
    return DecayRule.from_half_lives(np.full(v, hl), threshold, capacity)


# ---------------------------------------------------------------------------------------------
# Profile update rule
# ---------------------------------------------------------------------------------------------


def test_profile_decays_by_newton_cooling_with_the_half_life():
    p = Profile(rule())
    p.update(0, 3, 2.0)
    assert p.weight(3, 72 * HOUR_MS) == pytest.approx(1.0, rel=1e-12)  # one half-life
    assert p.weight(3, 144 * HOUR_MS) == pytest.approx(0.5, rel=1e-12)
    assert p.weight(3, 10 * HOUR_MS) == pytest.approx(2.0 * math.exp(-math.log(2) / 72 * 10), rel=1e-12)


def test_profile_merge_overrides_its_key_with_decayed_plus_new_and_leaves_others_lazily_decayed():
    p = Profile(rule())
    p.update(0, 1, 1.0)
    p.update(0, 2, 4.0)
    p.update(72 * HOUR_MS, 1, 3.0)
    assert p.slots[1] == [pytest.approx(0.5 + 3.0), 72 * HOUR_MS]
    assert p.slots[2] == [4.0, 0]  # untouched: stored as of its own time
    assert p.weight(2, 72 * HOUR_MS) == pytest.approx(2.0)


def test_profile_per_category_half_life_override():
    hl = np.full(5, 72.0)
    hl[4] = 24.0
    p = Profile(DecayRule.from_half_lives(hl))
    p.update(0, 4, 1.0)
    p.update(0, 3, 1.0)
    assert p.weight(4, 24 * HOUR_MS) == pytest.approx(0.5)
    assert p.weight(3, 24 * HOUR_MS) == pytest.approx(2 ** (-1 / 3))


def test_profile_drops_weights_below_the_threshold_and_ignores_unknown_keys():
    p = Profile(rule(threshold=0.1))
    p.update(0, 1, 1.0)
    p.update(0, 0, 5.0)  # out of vocabulary
    assert set(p.slots) == {1}
    # 1.0 → below 0.1 after log2(10) = 3.32 half-lives
    p.update(int(3.3 * 72 * HOUR_MS), 2, 1.0)
    assert set(p.slots) == {1, 2}
    p.update(int(3.4 * 72 * HOUR_MS), 2, 1.0)
    assert set(p.slots) == {2}


def test_profile_capacity_evicts_the_weakest_and_update_cost_does_not_grow_with_history():
    p = Profile(rule(v=5000, capacity=8, threshold=0.0))
    for i in range(1, 20):
        p.update(i * 1000, i, float(i))
    assert len(p.slots) == 8 and set(p.slots) == set(range(12, 20))
    # O(1) in history length: the same number of slot visits after 100 and after 4,000 events
    # (counted, not timed: each update touches at most capacity + 1 slots)
    calls = {"n": 0}
    orig = Profile.weight

    def counting(self, key, t):
        calls["n"] += 1
        return orig(self, key, t)

    rng = np.random.default_rng(0)
    keys = rng.integers(1, 5000, 4000)
    q = Profile(rule(v=5000, capacity=8))
    Profile.weight = counting
    try:
        per = []
        for n, k in enumerate(keys):
            before = calls["n"]
            q.update(n * 60_000, int(k), 1.0)
            per.append(calls["n"] - before)
    finally:
        Profile.weight = orig
    assert max(per) <= 2 * (8 + 2) + 8 * 8  # bounded by the capacity, whatever the history
    assert np.mean(per[100:200]) == pytest.approx(np.mean(per[3900:]), rel=0.25)


# ---------------------------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------------------------


def test_gentle_adaboost_matches_a_hand_checked_stump():
    """x = [0, 1, 2, 3], y = [−, −, +, +] (equal weights): the first stump splits at 1.5 with leaf
    means −1 and +1 (the weighted means of y on each side), so F = ±1 and the weights become
    e^{−1} each; the second round's best stump repeats the split."""
    from edgeintent.rank.scorers import context_probability, gentle_adaboost

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    st = gentle_adaboost(x, y, rounds=1)
    assert len(st) == 1 and st.feat[0] == 0 and st.thr[0] == 1.5
    assert st.left[0] == pytest.approx(-1.0) and st.right[0] == pytest.approx(1.0)
    assert st.train_error == 0.0
    assert np.allclose(context_probability(st.decision(x)), 1 / (1 + np.exp([2, 2, -2, -2])))
    # a noisy case: x = [0, 1, 2, 3], y = [−, +, −, +], weights 1/4: the split at 0.5 (left {−}: mean −1;
    # right {+, −, +}: mean 1/3) has weighted SSE 0 + (4/9 + 16/9 + 4/9)/4 = 2/3, as has the split at 2.5;
    # the split at 1.5 has 1. The first of the tied best splits is kept.
    st2 = gentle_adaboost(x, np.array([0, 1, 0, 1]), rounds=1)
    assert st2.thr[0] == 0.5 and st2.left[0] == pytest.approx(-1.0) and st2.right[0] == pytest.approx(1 / 3)


def test_gentle_adaboost_balances_rare_positives_and_stops_at_the_round_limit():
    from edgeintent.rank.scorers import gentle_adaboost

    rng = np.random.default_rng(0)
    x = rng.integers(0, 24, (2000, 2)).astype(float)
    y = (x[:, 0] >= 18) & (rng.random(2000) < 0.5)  # rare, hour-dependent
    st = gentle_adaboost(x, y, rounds=30)
    assert 1 <= len(st) <= 30
    assert st.train_error < 0.35  # the evening effect is found despite ~12 % positives
    noise = gentle_adaboost(x, rng.random(2000) < 0.1, rounds=30)
    assert noise.train_error > st.train_error


def test_context_scorer_round_budget_and_cache():
    from edgeintent.rank.scorers import ContextScorer, Stumps

    def stumps(n):
        return Stumps(np.zeros(n, np.int64), np.full(n, 5.0), np.full(n, -0.1), np.full(n, 0.1))

    cs = ContextScorer({0: stumps(10), 1: stumps(10), 2: stumps(0)})
    got = cs.score([0, 1, 2], np.array([[7.0]]), hour_key=7, budget=15)
    assert got[0] == pytest.approx(1 / (1 + math.exp(-2.0))) and got[1] is None and got[2] == 0.5
    assert cs.rounds_used == 10
    got = cs.score([0, 1], np.array([[7.0]]), hour_key=7, budget=15)  # 0 from the cache, 1 now fits
    assert got[0] == pytest.approx(1 / (1 + math.exp(-2.0))) and got[1] is not None and cs.rounds_used == 20
    got = cs.score([0, 1], np.array([[3.0]]), hour_key=3, budget=0)  # another hour, no budget: nothing scored
    assert got == {0: None, 1: None}


def test_fp_growth_pairs_score_lift_over_popularity():
    """Tag a → category X always; X is also popular without a; tag b says nothing."""
    from edgeintent.rank.scorers import mine_interest

    trans = [(("a",), "X", 1)] * 10 + [(("b",), "X", 1)] * 10 + [(("b",), "Y", 1)] * 10 + [(("a", "b"), "X", 2)] * 5
    got = mine_interest(trans, min_count=3, max_tags=2)
    n = 10 + 10 + 10 + 10
    s_a, s_x, s_ax = 20 / n, 30 / n, 20 / n
    assert got[(("a",), "X")] == pytest.approx(1 - 1 / (s_ax / (s_a * s_x)))
    assert (("a",), "Y") not in got  # never together
    assert (("b",), "X") not in got  # lift < 1: b makes X less likely than its popularity
    assert (("a", "b"), "X") in got  # two tags kept
    assert all(len(t) <= 2 for t, _ in got)


def test_fp_growth_counts_conversions_as_several_clicks():
    from edgeintent.rank.scorers import mine_interest

    base = [(("a",), "X", 1)] * 2 + [(("c",), "Y", 1)] * 10
    assert (("a",), "X") not in mine_interest(base, min_count=4)
    assert (("a",), "X") in mine_interest([(("a",), "X", 3)] * 2 + base[2:], min_count=4)


# ---------------------------------------------------------------------------------------------
# Fit, bundle, golden trace, device export + parity
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from edgeintent.rank.run import run_fit

    path = tmp_path_factory.mktemp("rank") / "bundle"
    metrics = run_fit(SRC, path, RankConfig(vocab=128, rounds=30))
    return path, metrics


def test_fit_writes_a_verified_bundle_that_round_trips(fitted):
    from edgeintent.rank.fit import load_rank_bundle

    path, metrics = fitted
    ranker, m, golden = load_rank_bundle(path)
    assert m["requests"] == metrics["requests"] > 0
    for name in ("interest", "context", "keyword", "recency", "fusion", "popularity"):
        assert 0.0 <= m[name]["ndcg@10"] <= 1.0
    assert m["recency"]["ndcg@10"] > 0.2  # people come back to what they looked at
    assert len(ranker.vocab) <= 128 and ranker.tables["interest"].shape[1] == len(ranker.vocab)
    assert not any(p.suffix in (".pkl", ".pickle") for p in path.rglob("*"))
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["kind"] == "rank" and cfg["config"]["half_life_h"] == 72.0


@pytest.mark.parametrize("change", ["weights.safetensors", "golden.npz", "extra"])
def test_a_tampered_bundle_is_refused(fitted, tmp_path, change):
    import shutil

    from edgeintent.rank.fit import load_rank_bundle

    dst = tmp_path / "b"
    shutil.copytree(fitted[0], dst)
    if change == "extra":
        (dst / "note.txt").write_text("x")
    else:
        blob = bytearray((dst / change).read_bytes())
        blob[-1] ^= 1
        (dst / change).write_bytes(bytes(blob))
    with pytest.raises(BundleError, match="modified after it was written"):
        load_rank_bundle(dst)


def test_golden_profile_trace_replays_bit_for_bit(fitted):
    from edgeintent.rank.fit import load_rank_bundle

    ranker, _, golden = load_rank_bundle(fitted[0])
    assert len(golden["trace_ts_ms"]) >= 10 and (golden["trace_state_key"] > 0).any()
    assert replay_trace(ranker.rule(), golden) == []
    # and the replay can fail: a half-life one part in 10^12 off changes some weight's bits
    hl = ranker.tables["half_life_h"] * (1 + 1e-12)
    assert replay_trace(DecayRule.from_half_lives(hl, ranker.config.threshold, ranker.config.capacity), golden) != []


def _model_targets():
    from tests.helpers import quick_targets

    return quick_targets()


@pytest.mark.parametrize("target", _model_targets())
def test_scorer_exports_and_passes_parity(fitted, tmp_path, target):
    from edgeintent.exporters import get_target
    from edgeintent.rank.fit import load_rank_bundle
    from edgeintent.rank.run import export_scorer, parity_check

    t = get_target(target)
    if t.missing() or t.run_missing():
        pytest.skip(t.missing() or t.run_missing())
    ranker, _, golden = load_rank_bundle(fitted[0])
    out = tmp_path / t.artifact_name("fp32")
    if not t.dynamic_batch:  # a fixed-shape target runs one row at a time: the scorer's user tables are not rows
        with pytest.raises(ExportError, match="not indexed by the batch row") as exc:
            export_scorer(ranker, golden, target, out)
        assert "\n" not in str(exc.value) and not out.exists()
        return
    export_scorer(ranker, golden, target, out)
    res = parity_check(ranker, golden, target, out)
    assert res["passed"], res["reasons"]
    assert res["batch"]["logit_max_abs"] < 1e-4 and res["rows"] > 100


def test_fused_scorer_ranks_the_profile_first_and_each_tier_by_its_own_fusion_with_the_prior(fitted):
    from edgeintent.rank.device import fusion_prior, run_torch
    from edgeintent.rank.fit import golden_feeds, load_rank_bundle

    ranker, _, golden = load_rank_bundle(fitted[0])
    feeds = golden_feeds(golden)
    out = run_torch(ranker.module(), feeds)
    tier = out["tier"]
    # the golden cases (which parity runs on every target) hold candidates of both tiers
    assert 0 < tier.sum() < len(tier)
    p = 1.0 / (1.0 + np.exp(-out["fused_logit"].astype(np.float64)))
    np.testing.assert_allclose(out["prob_rank"], (tier + p) / 2, atol=1e-6)
    for r in np.unique(feeds["row_user"]):
        rows = feeds["row_user"] == r
        if (tier[rows] == 1).any() and (tier[rows] == 0).any():
            assert out["prob_rank"][rows][tier[rows] == 1].min() > out["prob_rank"][rows][tier[rows] == 0].max()
    assert ranker.tables["fusion_w"].shape == (2, int(ranker.tables["industry_of"].max()) + 1, 5)
    # the popularity prior is an input: another popularity table moves the fused logits
    prior = fusion_prior(ranker.tables["popularity"])
    assert 0.0 <= prior.min() and prior.max() == pytest.approx(1.0)
    ranker.tables["popularity"] = ranker.tables["popularity"][::-1].copy()
    moved = run_torch(ranker.module(), feeds)["fused_logit"]
    assert np.abs(moved - out["fused_logit"]).max() > 1e-3


def test_tiered_fusion_fits_each_tier_apart():
    from edgeintent.rank.scorers import fit_tiered_fusion

    rng = np.random.default_rng(0)
    n = 4000
    x = rng.random((n, 5))
    tier = (rng.random(n) < 0.5).astype(np.int64)
    logit = np.where(tier == 1, 6 * x[:, 3] - 3, 6 * x[:, 4] - 3)  # in the profile: weight; outside: prior
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    W, b, how = fit_tiered_fusion(x, y, np.zeros(n, np.int64), tier, 1)
    assert how == {"outside": ["fitted"], "in_profile": ["fitted"]}
    assert W[1, 0, 3] > 2 and abs(W[1, 0, 4]) < 1 and W[0, 0, 4] > 2 and abs(W[0, 0, 3]) < 1


def test_mnn_session_reuses_its_tensors_and_stays_right_when_inputs_and_shapes_change(fitted, tmp_path):
    from edgeintent.exporters import ArtifactMeta, get_target
    from edgeintent.rank.device import run_torch, take_rows
    from edgeintent.rank.fit import golden_feeds, load_rank_bundle
    from edgeintent.rank.run import export_scorer
    from edgeintent.runtimes import open_artifact

    t = get_target("mnn")
    if t.missing() or t.run_missing():
        pytest.skip(t.missing() or t.run_missing())
    ranker, _, golden = load_rank_bundle(fitted[0])
    feeds = golden_feeds(golden)
    sig = ranker.module().signature()
    path = tmp_path / t.artifact_name("fp32")
    export_scorer(ranker, golden, "mnn", path)
    meta = ArtifactMeta("mnn", "fp32", str(path), "rank", sig.inputs, sig.outputs, 0)

    def request(r: int, n: int) -> dict:  # request r's profile with n candidates (same shapes for every r)
        f = take_rows(feeds, np.flatnonzero(feeds["row_user"] == r)[:1])
        f["cand"] = (np.arange(n) * (r + 3) % (len(ranker.vocab) - 1) + 1).astype(np.int64)
        f["row_user"] = np.zeros(n, np.int64)
        return f

    calls = [request(0, 40), request(1, 40), request(2, 40), request(1, 7), request(0, 40), take_rows(feeds, np.arange(len(feeds["cand"])))]
    with open_artifact(t.artifact(path, meta), threads=1) as sess:
        got = [sess.run(f) for f in calls]
        impl = sess._impl
        # the CPU backend keeps this graph's inputs and outputs as plain host memory: written and read in place
        assert impl._in and all(view is not None for _, view in impl._in.values())
        assert all(view is not None for _, view in impl._out.values())
    for f, g in zip(calls, got, strict=True):
        ref = run_torch(ranker.module(), f)
        with open_artifact(t.artifact(path, meta), threads=1) as fresh:  # a new session: nothing reused
            once = fresh.run(f)
        for o in ("prob_rank", "logit_rank"):
            np.testing.assert_array_equal(g[o], once[o])
            np.testing.assert_allclose(g[o], ref[o], atol=1e-4)
    assert np.abs(got[0]["logit_rank"] - got[1]["logit_rank"]).max() > 1e-3  # the calls did differ
    # an output array is a copy: the next call does not change it
    np.testing.assert_allclose(got[0]["logit_rank"], run_torch(ranker.module(), calls[0])["logit_rank"], atol=1e-4)


def test_parity_catches_a_wrong_scorer(fitted, tmp_path):
    from edgeintent.rank.fit import load_rank_bundle
    from edgeintent.rank.run import export_scorer, parity_check

    ranker, _, golden = load_rank_bundle(fitted[0])
    ranker.tables["fusion_w"] = ranker.tables["fusion_w"] * 1.01  # a slightly different fusion
    out = tmp_path / "model.onnx"
    export_scorer(ranker, golden, "onnx", out)
    res = parity_check(ranker, golden, "onnx", out)
    assert not res["passed"] and any("logits differ" in r for r in res["reasons"])


def test_rank_score_context_budget_spends_rounds_and_fills_the_cache(fitted, tmp_path):
    from edgeintent.cli import main
    from edgeintent.rank.device import run_torch
    from edgeintent.rank.fit import golden_feeds, load_rank_bundle
    from edgeintent.rank.run import budgeted_context, context_stumps

    ranker, _, golden = load_rank_bundle(fitted[0])
    stumps = context_stumps(ranker)
    kept = sorted(stumps)
    assert kept, "the fixture keeps some industry's context stumps"
    feeds = golden_feeds(golden)
    n = int(feeds["row_user"].max()) + 1
    cands = [feeds["cand"][feeds["row_user"] == r] for r in range(n)]
    hours = np.arange(n, dtype=np.int64) * 10 * HOUR_MS  # every request in its own hour: no cache hits
    every = sum(len(st) for st in stumps.values())
    ctx, info = budgeted_context(ranker, feeds["context"], hours, cands, every)
    # a budget that covers every industry gives the graph's context scores
    ref = run_torch(ranker.module(), feeds)
    got = run_torch(ranker.module(), {**feeds, "context_by_industry": ctx})
    np.testing.assert_allclose(got["context"], ref["context"], atol=1e-6)
    np.testing.assert_allclose(got["logit_rank"], ref["logit_rank"], atol=1e-5)
    # no budget: nothing is scored, every industry neutral
    ctx0, info0 = budgeted_context(ranker, feeds["context"], hours, cands, 0)
    assert info0["rounds_used"] == 0 and (ctx0 == 0.5).all() and info0["industries_skipped"] > 0
    # one industry's rounds per request, every request in the same context hour: the cache fills up,
    # each request scoring one more industry, until every kept industry is cached
    same = np.repeat(feeds["context"][:1], len(kept) + 1, axis=0)
    all_c = [np.arange(1, len(ranker.vocab), dtype=np.int64)] * len(same)
    budget = max(len(st) for st in stumps.values())
    ctx1, info1 = budgeted_context(ranker, same, np.zeros(len(same), np.int64), all_c, budget)
    assert info1["cached"] == len(kept) and info1["rounds_used"] == every
    assert (ctx1[-1, kept] != 0.5).all() and (ctx1[0] == 0.5).sum() >= len(ranker.tables["stump_feat"]) - 1
    # the CLI option: with a budget covering everything, the scores of the default
    good = tmp_path / "c.csv"
    good.write_text("user_id,category_id\n" + "".join(f"{u},{c}\n" for u in (2, 5) for c in ranker.vocab[1:6]))
    runner = CliRunner()
    a = runner.invoke(main, ["rank", "score", str(fitted[0]), "--data", SRC, "--candidates", str(good), "--json"])
    b = runner.invoke(main, ["rank", "score", str(fitted[0]), "--data", SRC, "--candidates", str(good), "--json",
                             "--context-budget", str(every)])  # fmt: skip
    assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output)
    ra, rb = json.loads(a.output), json.loads(b.output)
    assert [r["score"] for r in ra] == pytest.approx([r["score"] for r in rb], abs=1e-6)
    c = runner.invoke(main, ["rank", "score", str(fitted[0]), "--data", SRC, "--candidates", str(good), "--context-budget", "-1"])
    assert c.exit_code == 2


def test_cli_fit_score_and_bad_candidate_files(fitted, tmp_path):
    from edgeintent.cli import main
    from edgeintent.rank.fit import load_rank_bundle

    path = fitted[0]
    ranker, _, _ = load_rank_bundle(path)
    cats = ranker.vocab[1:6]
    good = tmp_path / "c.csv"
    good.write_text("user_id,category_id\n" + "".join(f"{u},{c}\n" for u in (2, 5) for c in cats))
    runner = CliRunner()
    res = runner.invoke(main, ["rank", "score", str(path), "--data", SRC, "--candidates", str(good), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) == 10 and {r["user_id"] for r in rows} == {2, 5}
    for u in (2, 5):
        s = [r["score"] for r in rows if r["user_id"] == u]
        assert s == sorted(s, reverse=True) and all(0 < x < 1 for x in s)
    bad = {
        "empty.csv": "user_id,category_id\n",
        "columns.csv": "user,category\n1,2\n",
        "unknown_cat.csv": f"user_id,category_id\n2,{int(ranker.vocab.max()) + 7}\n",
        "unknown_user.csv": f"user_id,category_id\n999999,{cats[0]}\n",
        "text.csv": "user_id,category_id\nab,cd\n",
    }
    for name, text in bad.items():
        f = tmp_path / name
        f.write_text(text)
        res = runner.invoke(main, ["rank", "score", str(path), "--data", SRC, "--candidates", str(f)])
        assert res.exit_code == 2, (name, res.output)
        assert "Traceback" not in res.output
    res = runner.invoke(main, ["rank", "score", str(tmp_path / "nope"), "--data", SRC, "--candidates", str(good)])
    assert res.exit_code == 2


def test_read_candidates_messages(tmp_path):
    from edgeintent.rank.run import read_candidates

    f = tmp_path / "c.csv"
    f.write_text("user_id,item\n1,2\n")
    with pytest.raises(DataError, match="missing category_id"):
        read_candidates(f)
    f.write_text("user_id,category_id\n")
    with pytest.raises(DataError, match="no candidates"):
        read_candidates(f)


@pytest.mark.realdata
def test_taobao_fit_runs_on_a_subset(tmp_path):
    from edgeintent.toolkit.data.dataset import DEFAULT_SHARED_DATA

    src = DEFAULT_SHARED_DATA / "taobao_userbehavior"
    if not src.exists():
        pytest.skip(f"{src} is absent")
    from edgeintent.rank.fit import fit_ranker
    from edgeintent.toolkit.data.sources import load_source

    t0 = time.perf_counter()
    ds = load_source(f"taobao:{src}")
    ds.events = ds.events.filter_users(np.unique(ds.events.stream("cloud")["user_id"].to_numpy())[:150])
    _, m, _ = fit_ranker(ds, RankConfig(vocab=256, rounds=20))
    assert m["requests"] > 20 and m["recency"]["ndcg@10"] > m["popularity"]["ndcg@10"] * 0.5
    assert time.perf_counter() - t0 < 60


def test_cli_export_adds_passing_artifacts_to_the_bundle(fitted, tmp_path):
    import shutil

    from edgeintent.cli import main
    from edgeintent.rank.fit import load_rank_bundle

    dst = tmp_path / "b"
    shutil.copytree(fitted[0], dst)
    res = CliRunner().invoke(main, ["rank", "export", str(dst), "--target", "onnx", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert [r["target"] for r in out] == ["onnx"] and out[0]["passed"]
    manifest = json.loads((dst / "manifest.json").read_text())
    assert "exports/onnx/model.onnx" in manifest["files"]
    load_rank_bundle(dst)  # still verifies with the artifact listed
    res = CliRunner().invoke(main, ["rank", "export", str(dst), "--target", "kit"])
    assert res.exit_code == 2 and "not a model target" in res.output


def test_rank_export_replaces_a_directory_artifact_as_a_whole(fitted, tmp_path):
    """Re-exporting an .mlpackage leaves no file of the earlier export in the rank bundle."""
    import shutil

    from edgeintent.exporters import get_target
    from edgeintent.rank.fit import add_rank_files, load_rank_bundle
    from edgeintent.rank.run import run_export

    if get_target("coreml").missing():
        pytest.skip(get_target("coreml").missing())
    dst = tmp_path / "b"
    shutil.copytree(fitted[0], dst)
    (res,) = run_export(dst, ["coreml"])
    assert res["passed"], res["reasons"]
    first = set(json.loads((dst / "manifest.json").read_text())["files"])
    stale = "exports/coreml/model.mlpackage/Data/com.apple.CoreML/weights/old.bin"  # as an earlier export's layout would
    add_rank_files(dst, {stale: b"old"})
    run_export(dst, ["coreml"])
    assert set(json.loads((dst / "manifest.json").read_text())["files"]) == first and not (dst / stale).exists()
    load_rank_bundle(dst)
