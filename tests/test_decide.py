"""Coupon allocation (MCKP primal-dual), the on-device rule, policy evaluation and their CLI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeintent.cli import main
from edgeintent.decide.allocation import OBJECTIVES, allocate, gains, lp_relaxation, solve
from edgeintent.decide.policy import POLICIES, Outcomes, PolicyInputs, evaluate_policies, outcomes_from_decisions, score
from edgeintent.decide.rule import RULE_FILE, DecisionRule, decide, decide_batch, read_rule, rule_from_allocation, write_rule
from edgeintent.errors import BundleError, ConfigError
from edgeintent.toolkit.bundle import verify_bundle
from edgeintent.toolkit.data.simulator import SimConfig, simulate

AMOUNTS = np.array([0.0, 5.0, 10.0, 20.0])


def _sim_probs(users: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    sim = simulate(SimConfig(users=users, seed=seed))
    out = outcomes_from_decisions(sim.decisions)
    return out.p, out.amounts


@pytest.fixture(scope="module")
def sim10k():
    p, a = _sim_probs(2900, 11)  # ~10k decision points
    assert p.shape[0] >= 9500
    return p, a


def _random_probs(rng, n, k=4, ties=False):
    base = rng.normal(-3.0, 1.0, n)
    sens = rng.gamma(2.0, 0.5, n)
    h = np.log1p(np.linspace(0, 20, k) / 5.0)
    p = 1.0 / (1.0 + np.exp(-(base[:, None] + sens[:, None] * h[None, :])))
    if ties:
        p = np.round(p, 2)
    return p


# ---------------------------------------------------------------------------------------------
# The solver
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("per_point", [0.5, 2.0, 5.0, 10.0, 40.0])
def test_within_one_percent_of_the_lp_on_10k_simulated_users(sim10k, objective, per_point):
    p, a = sim10k
    n = p.shape[0]
    budget = per_point * n
    al = allocate(p, budget, a, objective, order_value=60.0)
    assert al.spend <= budget
    g = gains(p, a, objective, 60.0)
    lp = lp_relaxation(g, a, budget)
    # the solver's own LP bound (greedy with the fractional break segment) is the LP optimum
    assert al.lp_bound == pytest.approx(lp, rel=1e-6, abs=1e-6)
    assert al.value <= lp + 1e-6
    assert al.value >= lp - 0.01 * abs(lp)
    assert al.value == pytest.approx(float(g[np.arange(n), al.choice].sum()))


@pytest.mark.slow
def test_lp_check_at_100k_users():
    rng = np.random.default_rng(5)
    p = _random_probs(rng, 100_000)
    g = gains(p, AMOUNTS)
    al = allocate(p, 300_000.0, AMOUNTS)
    assert al.spend <= 300_000.0
    assert lp_relaxation(g, AMOUNTS, 300_000.0) == pytest.approx(al.lp_bound, rel=1e-6)


def _brute_force(g, costs, budget, eligible):
    n, k = g.shape
    best = -np.inf
    for combo in itertools.product(range(k), repeat=n):
        c = np.array(combo)
        if np.any((c > 0) & ~eligible) or costs[c].sum() > budget:
            continue
        best = max(best, g[np.arange(n), c].sum())
    return best


def test_small_instances_against_brute_force_and_lp():
    rng = np.random.default_rng(0)
    costs = np.array([0.0, 1.0, 2.0, 4.0])
    for trial in range(60):
        n = int(rng.integers(1, 6))
        g = rng.normal(0.0, 1.0, (n, 4))
        g[:, 0] = rng.normal(0.0, 0.2, n)
        if trial % 3 == 0:
            g = np.round(g, 0)  # many ties
        eligible = rng.random(n) < 0.8
        budget = float(rng.integers(0, 12))
        choice, lam, lp_bound, _ = solve(g, costs, budget, eligible)
        value = g[np.arange(n), choice].sum()
        assert costs[choice].sum() <= budget
        assert np.all(choice[~eligible] == 0)
        assert lam >= 0.0
        opt = _brute_force(g, costs, budget, eligible)
        assert value <= opt + 1e-9
        assert opt <= lp_bound + 1e-9
        assert lp_bound == pytest.approx(lp_relaxation(g, costs, budget, eligible), abs=1e-6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 40),
    k=st.integers(2, 5),
    seed=st.integers(0, 2**31 - 1),
    budget=st.floats(0, 400, allow_nan=False),
    ties=st.booleans(),
)
def test_property_spend_never_exceeds_budget(n, k, seed, budget, ties):
    rng = np.random.default_rng(seed)
    costs = np.concatenate([[0.0], np.cumsum(rng.integers(1, 8, k - 1)).astype(float)])
    g = rng.normal(0.0, 1.0, (n, k))
    if ties:
        g = np.round(g * 2) / 2
    eligible = rng.random(n) < 0.9
    choice, lam, lp_bound, _ = solve(g, costs, budget, eligible)
    rows = np.arange(n)
    assert costs[choice].sum() <= budget
    assert np.all(choice[~eligible] == 0)
    # never a coupon that loses against "no coupon"
    assert np.all(g[rows, choice] >= g[:, 0] - 1e-12)
    value = g[rows, choice].sum()
    assert value <= lp_bound + 1e-9
    # the greedy integral answer misses the LP by at most one segment's gain
    assert lp_bound - value <= np.max(g - g[:, :1]) + 1e-9


def test_ties_identical_users_fill_budget_exactly_and_deterministically():
    p = np.tile([[0.02, 0.05, 0.06, 0.061]], (1000, 1))
    al = allocate(p, 5.0 * 300 + 3.0, AMOUNTS)  # 300 coupons of 5 fit, not 301
    assert al.spend <= al.budget
    assert (al.choice == 1).sum() == 300 and (al.choice > 1).sum() == 0
    assert np.all(al.choice[:300] == 1)  # ties go to the earliest users
    again = allocate(p, 5.0 * 300 + 3.0, AMOUNTS)
    assert np.array_equal(al.choice, again.choice)


def test_collinear_options_and_equal_ratio_chain():
    # gain linear in cost: every coupon has the same ratio; the solver must still respect the budget
    p = np.tile([[0.0, 0.05, 0.10, 0.20]], (50, 1))
    for budget in (0.0, 7.0, 100.0, 333.0, 1000.0, 5000.0):
        al = allocate(p, budget, AMOUNTS)
        assert al.spend <= budget
        assert al.spend >= min(budget, 1000.0) - 20.0  # nothing useful left unspent beyond one coupon
        assert al.value == pytest.approx(al.spend * 0.01)


def test_no_profitable_coupon_and_ample_budget():
    p = np.array([[0.05, 0.04, 0.03, 0.02], [0.05, 0.05, 0.05, 0.05], [0.01, 0.03, 0.04, 0.041]])
    al = allocate(p, 1e9, AMOUNTS)
    assert al.lam == 0.0
    assert al.choice.tolist() == [0, 0, 3]  # falling and flat responses get nothing; the last its best
    v = allocate(p, 1e9, AMOUNTS, "value", order_value=100.0)  # 100·0.03 − 10·0.04 = 2.6 > 100·0.031 − 20·0.041
    assert v.choice.tolist() == [0, 0, 2]
    cheap = allocate(p, 1e9, AMOUNTS, "value", order_value=5.0)  # coupons cost more than they bring
    assert cheap.choice.tolist() == [0, 0, 0]
    purchases = allocate(p, 1e9, AMOUNTS, "purchases")  # counts p_j itself: flat response still gets one
    assert purchases.choice.tolist() == [1, 1, 3]


def test_gamma_keeps_users_who_will_stay_out():
    rng = np.random.default_rng(1)
    p = _random_probs(rng, 2000)
    stay = rng.random(2000)
    al = allocate(p, 1e9, AMOUNTS, stay=stay, gamma=0.6)
    assert np.all(al.choice[stay >= 0.6] == 0)
    assert np.all(al.choice[stay < 0.6] > 0)
    assert np.array_equal(al.eligible, stay < 0.6)
    with pytest.raises(ConfigError, match="needs stay"):
        allocate(p, 10.0, AMOUNTS, gamma=0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"amounts": (5.0, 10.0)}, "start with 0"),
        ({"amounts": (0.0, 10.0, 5.0, 20.0)}, "increase strictly"),
        ({"objective": "revenue"}, "objective must be"),
        ({"budget": -1.0}, "budget"),
        ({"gamma": 1.5}, "gamma"),
    ],
)
def test_bad_arguments_raise_config_errors(kwargs, match):
    p = np.full((3, 4), 0.1)
    args = {"budget": 10.0, "amounts": AMOUNTS, "objective": "incremental", "gamma": 1.0} | kwargs
    with pytest.raises(ConfigError, match=match):
        allocate(p, args["budget"], args["amounts"], args["objective"], np.zeros(3), args["gamma"])
    with pytest.raises(ConfigError, match="NaN"):
        allocate(np.full((3, 4), np.nan), 10.0, AMOUNTS)


# ---------------------------------------------------------------------------------------------
# The on-device rule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_device_rule_matches_the_batch_solver(sim10k, objective):
    p, a = sim10k
    rng = np.random.default_rng(2)
    stay = rng.random(p.shape[0])
    for per_point, gamma in ((1.0, 1.0), (4.0, 0.8), (12.0, 1.0)):
        al = allocate(p, per_point * p.shape[0], a, objective, stay, gamma, order_value=60.0)
        rule = rule_from_allocation(al, order_value=60.0)
        device = np.array([decide(rule, row.tolist(), float(s)) for row, s in zip(p, stay)])
        assert np.array_equal(device, decide_batch(rule, p, stay))
        agree = (device == al.choice).mean()
        assert agree >= 0.999, (objective, per_point, agree)
        # the rule alone, on the same users, stays within one coupon of the budget
        assert a[device].sum() <= al.budget + a[-1]


def test_decide_is_plain_python_and_breaks_ties_to_the_cheaper_amount():
    rule = DecisionRule(lam=0.001, gamma=1.0, amounts=(0, 5, 10, 20))
    # gains 0.005 − 0.005 = 0 at 5, 0.01 − 0.01 = 0 at 10: all tie with "no coupon"
    assert decide(rule, [0.0, 0.005, 0.01, 0.015]) == 0
    assert decide(rule, [0.0, 0.0051, 0.0101, 0.015]) == 1  # 0.0001 at both: the cheaper wins
    assert decide(rule, [0.0, 0.006, 0.02, 0.05]) == 3
    gated = DecisionRule(lam=0.0, gamma=0.5, amounts=(0, 5), stay_task="stay")
    assert decide(gated, [0.0, 0.5], stay=0.5) == 0 and decide(gated, [0.0, 0.5], stay=0.49) == 1
    with pytest.raises(ConfigError):
        decide(gated, [0.0, 0.5])


def test_rule_json_round_trip_and_validation():
    rule = DecisionRule(lam=0.0123, gamma=0.7, amounts=(0, 5, 10), objective="value", order_value=80.0,
                        solved_on={"budget": 100.0})  # fmt: skip
    back = DecisionRule.from_json(json.loads(json.dumps(rule.to_json())))
    assert back == rule
    with pytest.raises(BundleError, match="not an edgeintent decision rule"):
        DecisionRule.from_json({"lambda": 1})
    bad = rule.to_json() | {"lambda": -1.0}
    with pytest.raises(BundleError, match="lambda"):
        DecisionRule.from_json(bad)


# ---------------------------------------------------------------------------------------------
# Policy evaluation
# ---------------------------------------------------------------------------------------------


def test_score_on_hand_made_outcomes():
    truth = Outcomes(
        p=np.array([[0.1, 0.2, 0.3], [0.5, 0.5, 0.6]]),
        buy=np.array([[False, True, True], [True, True, True]]),
        amounts=np.array([0.0, 5.0, 10.0]),
    )
    s = score(np.array([1, 0]), truth)
    assert s["spend"] == 5.0 and s["coupons"] == 1
    assert s["incremental"] == pytest.approx(0.1)
    assert s["incremental_realised"] == 1
    assert s["incremental_per_cost"] == pytest.approx(0.02)
    assert s["redemption_rate"] == pytest.approx(0.2) and s["redemption_rate_realised"] == 1.0
    assert s["redeemed_cost"] == pytest.approx(1.0)


def test_policies_respect_budgets_and_the_oracle_is_the_ceiling(sim10k):
    p, a = sim10k
    n = p.shape[0]
    rng = np.random.default_rng(3)
    truth = Outcomes(p=p, buy=rng.random(p.shape) < p, amounts=a)
    noisy = np.clip(p * np.exp(rng.normal(0, 0.5, p.shape)), 1e-6, 1 - 1e-6)
    budgets = [0.7 * n, 5.0 * n, 10.0 * n]
    rows = evaluate_policies(PolicyInputs(noisy, None, truth), budgets)
    assert {r["policy"] for r in rows} == set(POLICIES)
    for r in rows:
        assert r["spend"] <= r["budget"]
    at = {(r["budget"], r["policy"]): r for r in rows}
    for b in budgets:
        assert at[(b, "oracle")]["incremental"] >= at[(b, "mckp")]["incremental"] - 1e-9
        assert at[(b, "oracle")]["incremental"] >= at[(b, "give-all")]["incremental"]
    assert at[(5.0 * n, "give-all")]["spend"] == 5.0 * n  # everyone gets 5
    assert at[(10.0 * n, "give-all")]["spend"] == 10.0 * n
    mb = at[(5.0 * n, "middle-band")]  # the middle half gets 10 each
    assert mb["coupons"] == n // 2 and mb["spend"] == 10.0 * (n // 2)
    band = POLICIES.get("middle-band")(PolicyInputs(noisy, None, truth), 5.0 * n, rng) > 0
    lo, hi = np.quantile(noisy[:, 0], [0.245, 0.755])
    assert np.all((noisy[band, 0] >= lo) & (noisy[band, 0] <= hi))
    # with the true probabilities as "predictions", mckp is the oracle
    same = evaluate_policies(PolicyInputs(p, None, truth), budgets, ["mckp", "oracle"])
    assert same[0]["incremental"] == same[1]["incremental"]


def test_outcomes_need_potential_outcomes():
    import pyarrow as pa

    from edgeintent.errors import DataError

    with pytest.raises(DataError, match="potential outcomes"):
        outcomes_from_decisions(pa.table({"user_id": [1], "t_ms": [2]}), "x.csv")
    with pytest.raises(DataError, match="potential outcomes"):
        outcomes_from_decisions(None, "x.csv")


# ---------------------------------------------------------------------------------------------
# Bundle + CLI (a tiny IIDN bundle)
# ---------------------------------------------------------------------------------------------

SRC = "sim:300:3"


@pytest.fixture(scope="module")
def iidn_bundle(trained):
    from edgeintent.toolkit.training.trainer import TrainConfig

    return trained("iidn", TrainConfig(epochs=1, batch_size=128, golden_rows=16), source=SRC,
                   options={"hidden": 8, "embed_dim": 4, "layers": 1})  # fmt: skip


def _fresh_copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_write_rule_updates_the_manifest(iidn_bundle, tmp_path):
    b = _fresh_copy(iidn_bundle, tmp_path / "b")
    rule = DecisionRule(lam=0.01, gamma=0.9, amounts=(0, 5, 10, 20))
    write_rule(b, rule)
    manifest = verify_bundle(b)
    assert RULE_FILE in manifest["files"]
    assert read_rule(b) == rule
    (b / RULE_FILE).write_text((b / RULE_FILE).read_text().replace("0.01", "0.02"))
    with pytest.raises(BundleError):
        read_rule(b)  # a changed decision.json no longer matches the manifest


def test_cli_allocate_writes_decisions_and_rule(iidn_bundle, tmp_path):
    b = _fresh_copy(iidn_bundle, tmp_path / "b")
    out = tmp_path / "decisions.parquet"
    res = CliRunner().invoke(main, ["allocate", "--bundle", str(b), "--data", "sim:200:9", "--budget", "1500",
                                    "--gamma", "0.95", "--out", str(out), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    t = pq.read_table(out)
    assert t.num_rows == r["users"] > 0
    amounts = t.column("amount").to_numpy()
    assert amounts.sum() == pytest.approx(r["spend"]) and r["spend"] <= 1500
    stay = t.column("stay").to_numpy()
    assert np.all(amounts[stay >= 0.95] == 0)
    assert r["device_parity"] >= 0.999
    assert np.mean(t.column("device_amount").to_numpy() == amounts) == pytest.approx(r["device_parity"])
    assert r["lp_gap"] < 0.01
    rule = read_rule(b)
    assert rule.lam == pytest.approx(r["lambda"]) and rule.gamma == 0.95 and rule.amounts == (0, 5, 10, 20)
    assert RULE_FILE in verify_bundle(b)["files"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cli_policy_eval_json_and_plot(iidn_bundle, tmp_path):
    plot = tmp_path / "curve.png"
    res = CliRunner().invoke(main, ["policy-eval", "--bundle", str(iidn_bundle), "--data", "sim:200:9",
                                    "--budgets", "500,3000", "--plot", str(plot), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert {(x["budget"], x["policy"]) for x in r["rows"]} == {(b, p) for b in (500.0, 3000.0) for p in POLICIES}
    assert all(x["spend"] <= x["budget"] for x in r["rows"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = CliRunner().invoke(main, ["policy-eval", "--bundle", str(iidn_bundle), "--data", "sim:200:9",
                                     "--budgets", "500"])  # fmt: skip
    assert text.exit_code == 0 and "oracle" in text.stdout and "x give-all" in text.stdout


def _one_line_error(args, expect):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0], res.stderr
    assert "Traceback" not in res.output


def test_cli_bad_input_exits_2_with_one_line(iidn_bundle, tmp_path):
    from edgeintent.toolkit.data.writer import write_events

    from .helpers import random_log

    out = str(tmp_path / "d.parquet")
    base = ["allocate", "--bundle", str(iidn_bundle), "--data", "sim:50:1", "--budget", "100", "--out"]
    _one_line_error(base + [out, "--amounts", "5,10"], "start with 0")
    _one_line_error(base + [out, "--amounts", "0,five"], "--amounts expects comma-separated numbers")
    _one_line_error(base + [str(tmp_path / "d.csv")], "must be a .parquet file")
    (tmp_path / "file").write_text("x")
    _one_line_error(base + [str(tmp_path / "file" / "d.parquet")], "is not a directory")
    _one_line_error(["allocate", "--bundle", str(tmp_path / "missing"), "--data", "sim:50:1", "--budget", "1",
                     "--out", out], "missing")  # fmt: skip
    _one_line_error(["allocate", "--bundle", str(iidn_bundle), "--data", "sim:x", "--budget", "1", "--out", out],
                    "bad simulator source")  # fmt: skip
    events = write_events(random_log(0), tmp_path / "ev.parquet")
    _one_line_error(["policy-eval", "--bundle", str(iidn_bundle), "--data", str(events)], "potential outcomes")
    _one_line_error(["policy-eval", "--bundle", str(iidn_bundle), "--data", "sim:50:1", "--budgets", "1,-2"],
                    "--budgets expects")  # fmt: skip
    assert not (tmp_path / "d.parquet").exists()


def test_amounts_share_the_stream_encoders_with_the_same_bytes_and_decisions(iidn_bundle):
    """predict_by_amount runs iidn's stream encoders once per batch (the coupon joins after them): P and S
    are the bytes of one full forward pass per amount, over one batch and over several, and so are the
    allocation's decisions."""
    from edgeintent.decide.predict import _logits_sharing_streams, predict_by_amount, with_offer
    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import build_samples
    from edgeintent.toolkit.models.exportable import predict_logits

    bundle = load_bundle(iidn_bundle)
    model = load_model(bundle)
    assert hasattr(model, "stream_parts") and model.hparams["cross_time"]
    ds = load_source("sim:200:9")
    samples = build_samples(ds.events, bundle.spec, ds.decisions, streams=list(model.streams))
    amounts = (0.0, 5.0, 10.0, 20.0)
    p, s = predict_by_amount(model, samples, amounts)
    p_sep, s_sep = predict_by_amount(model, samples, amounts, share_streams=False)
    assert p.tobytes() == p_sep.tobytes() and s.tobytes() == s_sep.tobytes()
    assert not np.allclose(p[:, 0], p[:, -1])  # the amounts do change the outputs
    idx = np.arange(len(samples))
    offered = [with_offer(samples, a) for a in amounts]
    for got, off in zip(_logits_sharing_streams(model, offered, idx, batch_size=97), offered):  # several batches
        want = predict_logits(model, off, idx, batch_size=97)
        assert all(got[t].tobytes() == want[t].tobytes() for t in model.tasks)
    budget = 2.0 * len(samples)
    a, b = allocate(p, budget, amounts, stay=s, gamma=0.95), allocate(p_sep, budget, amounts, stay=s_sep, gamma=0.95)
    assert np.array_equal(a.choice, b.choice) and a.lam == b.lam
