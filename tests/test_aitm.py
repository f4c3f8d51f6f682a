"""AITM: funnel labels, the AIT module and the calibrator against their formulas, the baselines'
structure, the per-step funnel report, and training through the registry and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
import torch
from click.testing import CliRunner

from edgeintent.cli import main
from edgeintent.errors import ConfigError
from edgeintent.toolkit.data.schema import EventLog
from edgeintent.toolkit.features import FUNNEL, is_funnel, label_decisions
from edgeintent.toolkit.models import create_model
from edgeintent.toolkit.models.aitm import AIT, calibrator_penalty
from edgeintent.toolkit.models.exportable import batch_for
from edgeintent.toolkit.training import metrics as M
from edgeintent.toolkit.training.funnel import funnel_report
from edgeintent.toolkit.training.trainer import TrainConfig

MIN = 60_000
FAST = TrainConfig(epochs=1, batch_size=128, patience=1, golden_rows=24)


# -- labels -------------------------------------------------------------------------------------


def _cloud_log(events: list[tuple[int, int, str]]) -> EventLog:
    n = len(events)
    return EventLog.from_columns({"cloud": {
        "user_id": [e[0] for e in events], "ts_ms": [e[1] for e in events], "action": [e[2] for e in events],
        "item_id": list(range(n)), "category_id": [1] * n, "price": [9.5] * n,
    }})  # fmt: skip


def test_funnel_labels_by_hand():
    """Cumulative labels at hand-picked decision points, and the rows whose raw events skip the cart."""
    log = _cloud_log([
        (1, 0, "view"), (1, 1 * MIN, "view"), (1, 2 * MIN, "view"), (1, 3 * MIN, "view"), (1, 4 * MIN, "cart"),
        (1, 5 * MIN, "buy"),
        (2, 0, "view"), (2, 1 * MIN, "buy"),  # a purchase without an add-to-cart: out of funnel order
        (3, 0, "view"), (3, 2 * MIN, "view"), (3, 40 * MIN, "cart"),  # the cart falls outside the 30 min horizon
        (4, 0, "view"), (4, 10 * 3600_000, "view"),  # the data goes on long enough to observe every horizon
    ])  # fmt: skip
    dec = pa.table({"user_id": [1, 1, 1, 2, 3], "t_ms": [1, 3 * MIN + 1, 4 * MIN + 1, 1, 1]})
    _, lab, obs = label_decisions(log, dec)
    assert lab["browse_rt"].tolist() == [1, 1, 1, 1, 0]  # user 1 at t=1: 3 more views; at 3 min: engaged
    assert lab["engage_rt"].tolist() == [1, 1, 1, 1, 0]
    assert lab["buy_rt"].tolist() == [1, 1, 1, 1, 0]
    assert lab["buy_skips_cart_rt"].tolist() == [0, 0, 1, 1, 0]  # after the cart at 4 min, the buy has none
    assert all(obs[k].all() for k in (*FUNNEL, "buy_skips_cart_rt"))
    log2 = _cloud_log([(1, 0, "view"), (1, MIN, "view"), (1, 2 * MIN, "view"), (2, 0, "view"), (2, 10 * 3600_000, "view")])
    _, lab2, _ = label_decisions(log2, pa.table({"user_id": [1], "t_ms": [0]}))
    assert lab2["browse_rt"].tolist() == [0]  # two further views are not deep enough (BROWSE_VIEWS = 3)


def test_funnel_labels_never_increase_along_the_funnel(prepared_source):
    lab = prepared_source().samples.labels
    for up, down in zip(FUNNEL, FUNNEL[1:]):
        assert (lab[down] <= lab[up]).all() and lab[down].sum() > 0 and lab[up].sum() > lab[down].sum()


def test_tasks_must_be_a_funnel_upstream_first(prepared_source):
    spec = prepared_source().spec
    assert is_funnel(("engage_rt", "buy_rt")) and is_funnel(FUNNEL) and not is_funnel(("buy_rt",))
    for tasks in (("buy_rt", "engage_rt"), ("engage_rt", "buy_long"), ("buy_rt",), ("engage_rt", "engage_rt")):
        with pytest.raises(ConfigError, match="upstream first"):
            create_model("aitm", spec, tasks=tasks)
    for opt, bad in (("transfer", "attention"), ("calibrator", -0.1), ("tower_layers", 0), ("dropout", 1.0)):
        with pytest.raises(ConfigError, match=opt):
            create_model("aitm", spec, **{opt: bad})


# -- the AIT module and the calibrator ------------------------------------------------------------


def _ait_reference(ait: AIT, q_k: np.ndarray, p_prev: np.ndarray, score_with: str) -> np.ndarray:
    """The issue's formula in numpy: slot u scored by (W_Q u)·(W_<score_with> u)/√d, softmax over slots."""
    w = {n: getattr(ait, n).weight.detach().numpy().astype(np.float64) for n in ("q", "k", "v")}
    slots = np.stack([q_k, p_prev], axis=1).astype(np.float64)  # (B, 2, d)
    proj = {n: slots @ w[n].T for n in w}
    s = (proj["q"] * proj[score_with]).sum(-1) / math.sqrt(q_k.shape[1])
    a = np.exp(s - s.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)
    return (a[:, :, None] * proj["v"]).sum(1)


def test_ait_is_attention_over_the_two_slots_with_q_dot_k():
    torch.manual_seed(0)
    ait = AIT(6)
    assert all(getattr(ait, n).bias is None for n in ("q", "k", "v"))
    rng = np.random.default_rng(0)
    q_k, p_prev = rng.normal(size=(16, 6)).astype(np.float32), rng.normal(size=(16, 6)).astype(np.float32)
    got = ait(torch.from_numpy(q_k), torch.from_numpy(p_prev)).detach().numpy()
    np.testing.assert_allclose(got, _ait_reference(ait, q_k, p_prev, "k"), rtol=1e-5, atol=1e-6)
    # the ports' bug (scores Q·V) gives other values: this test tells them apart
    assert np.abs(got - _ait_reference(ait, q_k, p_prev, "v")).max() > 1e-2
    # and with Q and V swapped in the module itself, the reference no longer matches
    swapped = AIT(6)
    swapped.load_state_dict({"q.weight": ait.v.weight, "k.weight": ait.k.weight, "v.weight": ait.q.weight})
    bad = swapped(torch.from_numpy(q_k), torch.from_numpy(p_prev)).detach().numpy()
    assert np.abs(bad - _ait_reference(ait, q_k, p_prev, "k")).max() > 1e-2


def test_calibrator_penalises_the_outputs_mean_over_the_batch(prepared_source):
    model = create_model("aitm", prepared_source().spec)
    assert model.funnel["calibrator"] == 0.6
    engage = torch.tensor([0.0, 1.0, -2.0, 3.0])
    buy = torch.tensor([1.0, -1.0, -1.0, 3.0], requires_grad=True)
    out = {"engage_rt": engage, "buy_rt": buy}
    loss = model.aux_loss(out)
    pe, pb = 1 / (1 + np.exp(-engage.numpy())), 1 / (1 + np.exp(-buy.detach().numpy()))
    want = 0.6 * np.mean(np.maximum(pb - pe, 0.0))
    assert float(loss.detach()) == pytest.approx(want, rel=1e-6) and want > 0.05
    # it acts on the predictions, so it has a gradient, only where p_buy > p_engage, pushing p_buy down
    loss.backward()
    g = buy.grad.numpy()
    assert g[0] > 0 and g[2] > 0 and g[1] == 0 and g[3] == 0
    # mean over the batch, not a sum: the same rows twice give the same value
    twice = {k: torch.cat([v.detach(), v.detach()]) for k, v in out.items()}
    assert float(model.aux_loss(twice)) == pytest.approx(want, rel=1e-6)
    # on labels (cumulative, so ordered) the penalty would be zero: a calibrator on labels cannot pass the above
    assert float(calibrator_penalty([torch.tensor([1.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 0.0])])) == 0.0
    # three steps: every adjacent pair counts
    three = calibrator_penalty([torch.tensor([0.2]), torch.tensor([0.5]), torch.tensor([0.9])])
    assert float(three) == pytest.approx(0.3 + 0.4)
    off = create_model("aitm", prepared_source().spec, calibrator=0.0)
    assert off.aux_loss(out) is None


def test_towers_are_stacked_and_upstream_first(prepared_source):
    prep = prepared_source()
    model = create_model("aitm", prep.spec, tasks=FUNNEL).eval()
    d, width = model.hparams["hidden"], model.encoded_width
    for tower in model.towers:
        linears = [m for m in tower if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [(width, d), (d, d)]
    assert len(model.ait) == len(model.info) == 2 and model.tasks == FUNNEL
    # z_1 = q_1: the first step's output does not depend on the transfer modules
    batch = batch_for(model, prep.samples, np.arange(32))
    before = model(batch)
    with torch.no_grad():
        for m in (*model.ait, *model.info):
            for p in m.parameters():
                p.add_(0.5)
    after = model(batch)
    torch.testing.assert_close(after["browse_rt"], before["browse_rt"])
    assert (after["buy_rt"] - before["buy_rt"]).abs().max() > 1e-3


def test_esmm_is_the_chain_rule_and_never_violates(prepared_source):
    prep = prepared_source()
    torch.manual_seed(0)
    model = create_model("aitm", prep.spec, transfer="esmm", calibrator=0.0).eval()
    batch = batch_for(model, prep.samples, np.arange(64))
    with torch.no_grad():
        out = model(batch)
        x = model.encode(batch)
        cond = torch.sigmoid(model.heads[1](model.towers[1](x)).squeeze(-1))
    p_engage, p_buy = torch.sigmoid(out["engage_rt"]), torch.sigmoid(out["buy_rt"])
    torch.testing.assert_close(p_buy, p_engage * cond, rtol=1e-4, atol=1e-6)
    assert (p_buy <= p_engage).all()


def test_mmoe_gates_mix_the_experts(prepared_source):
    model = create_model("aitm", prepared_source().spec, transfer="mmoe", calibrator=0.0, experts=4)
    assert len(model.experts) == 4 and len(model.gates) == 2 and all(g.out_features == 4 for g in model.gates)
    assert not hasattr(model, "ait")


# -- the per-step report --------------------------------------------------------------------------


def test_funnel_report_by_hand():
    y1 = np.array([1, 1, 1, 0, 0, 1, 0, 1])
    y2 = np.array([1, 0, 1, 0, 0, 0, 0, 1])
    l1 = np.array([2.0, 1.0, 0.5, -1.0, -2.0, 0.0, 0.3, 1.5])
    l2 = np.array([1.0, 1.5, 0.2, -3.0, -1.0, -1.0, -0.2, 1.0])
    obs = np.ones(8, bool)
    r = funnel_report(("engage_rt", "buy_rt"), {"engage_rt": y1, "buy_rt": y2}, {"engage_rt": obs, "buy_rt": obs},
                      {"engage_rt": l1, "buy_rt": l2}, n_boot=0)  # fmt: skip
    first, second = r["steps"]
    assert first["auc"] == pytest.approx(M.auc(y1, l1)) and "violation" not in first
    assert second["auc"] == pytest.approx(M.auc(y2, l2))
    given = y1 == 1
    assert second["n_given_prev"] == 5 and second["auc_given_prev"] == pytest.approx(M.auc(y2[given], l2[given]))
    assert second["violation"] == pytest.approx(2 / 8)  # rows 1 and 4 have p_buy > p_engage
    assert second["rate"] == pytest.approx(3 / 8) and 0 <= second["ece"] <= 1


def test_with_the_calibrator_the_funnel_order_is_a_condition_on_the_kept_epoch(prepared_source):
    spec = prepared_source().spec
    holds = create_model("aitm", spec).epoch_condition  # max_violation 0.1 % by default
    engage, buy = np.zeros(2000, np.float32), np.full(2000, -1.0, np.float32)
    assert holds({"engage_rt": engage, "buy_rt": buy}) == (True, 0.0)
    buy[:2] = 1.0  # 2 of 2000 rows: 0.1 %, allowed
    assert holds({"engage_rt": engage, "buy_rt": buy}) == (True, 0.001)
    buy[2] = 1.0  # 0.15 %
    assert holds({"engage_rt": engage, "buy_rt": buy}) == (False, 0.0015)
    buy[:] = 0.0  # equal logits are no violation
    assert holds({"engage_rt": engage, "buy_rt": buy})[0]
    assert create_model("aitm", spec, max_violation=0.5).epoch_condition({"engage_rt": engage, "buy_rt": buy + 1})[1] == 1.0
    three = create_model("aitm", spec, tasks=("browse_rt", "engage_rt", "buy_rt")).epoch_condition
    ok, share = three({"browse_rt": np.zeros(4), "engage_rt": np.array([1.0, -1, -1, -1]), "buy_rt": np.array([-2.0, 0, -2, -2])})
    assert not ok and share == 0.25  # the worst step: engage above browse on 1 row, buy above engage on 1
    assert create_model("aitm", spec, calibrator=0.0).epoch_condition is None
    for bad in (-0.1, 1.5, True, "x"):
        with pytest.raises(ConfigError, match="max_violation"):
            create_model("aitm", spec, max_violation=bad)


# -- training, evaluation and the CLI -------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"transfer": "esmm", "calibrator": 0.0}, {"transfer": "mmoe", "calibrator": 0.0}])
def test_variants_train_and_report_the_funnel(trained, options):
    out = trained("aitm", FAST, options=options)
    s = trained.summaries[out]
    assert s["tasks"] == ["engage_rt", "buy_rt"]
    steps = s["funnel"]["steps"]
    assert [r["task"] for r in steps] == ["engage_rt", "buy_rt"]
    assert steps[1]["n_given_prev"] > 0 and 0.0 <= steps[1]["violation"] <= 1.0
    assert steps[0]["auc"] == pytest.approx(s["valid"]["engage_rt"]["auc"])
    if options.get("transfer") == "esmm":
        assert steps[1]["violation"] == 0.0
    # the order is checked on every epoch of a model trained with the calibrator, and only then
    assert all(("condition" in row) == (options.get("calibrator", 0.6) > 0) for row in s["history"])
    assert s["funnel"]["order_breaks"]["rows"] <= s["funnel"]["order_breaks"]["buy_rows"]


def test_cli_trains_a_funnel_and_refuses_a_reversed_one(tmp_path):
    out = tmp_path / "b"
    base = ["train", "--model", "aitm", "--data", "sim:200:2", "--epochs", "1"]
    res = CliRunner().invoke(main, base + ["--out", str(out), "--set", "transfer=esmm", "--set", "calibrator=0", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["funnel"]["steps"][1]["violation"] == 0.0
    res = CliRunner().invoke(main, ["eval", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["funnel"]["steps"][1]["task"] == "buy_rt"
    res = CliRunner().invoke(main, base + ["--out", str(tmp_path / "c"), "--tasks", "buy_rt,engage_rt"])
    assert res.exit_code == 2 and "upstream first" in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("options", [{}, {"transfer": "esmm", "calibrator": 0.0}])
def test_every_exported_aitm_artifact_passes_the_parity_gate(trained, tmp_path, options):
    """onnx, coreml and mnn at fp32 through the generic exporters and the gate (nothing AITM-specific);
    ESMM's chain rule (softplus, exp, log) too."""
    import shutil

    from edgeintent.exporters import export_bundle
    from tests.conftest import BRIEF
    from tests.helpers import quick_targets

    # the model targets (a featurizer target such as the phone kit checks the FeatureSpec, not the model),
    # but those whose export takes minutes (tests/helpers.SLOW_EXPORT: their own test files cover them)
    targets = quick_targets()
    path = tmp_path / "aitm"
    shutil.copytree(trained("aitm", TrainConfig(**BRIEF), options=options), path)
    for target in targets:
        export_bundle(path, target)
    res = CliRunner().invoke(main, ["parity", str(path), "--target", ",".join(targets), "--json"])
    assert res.exit_code == 0, res.output[-3000:]
    report = json.loads(res.output)
    rows = {(r["target"], r["output"]): r for r in report["results"] if r["precision"] == "fp32"}
    assert report["passed"] and {t for t, _ in rows} == {"torch", *targets} and len(targets) >= 3
    for (_, task), r in rows.items():
        assert task in ("engage_rt", "buy_rt")
        assert r["passed"] and r["metrics"]["prob_max_abs"] <= 1e-5 and r["metrics"]["spearman"] > 0.9999, r


def test_same_seed_same_weight_bytes(tmp_path, prepared_source):
    from edgeintent.toolkit.training.trainer import train_bundle

    prep = prepared_source()
    for name in ("a", "b"):
        train_bundle("aitm", "sim:400:3", tmp_path / name, FAST, prepared=prep)
    assert (tmp_path / "a" / "weights.safetensors").read_bytes() == (tmp_path / "b" / "weights.safetensors").read_bytes()


def test_micro_batches_give_the_batch_gradient_calibrator_included(prepared_source):
    """The calibrator is a mean over the batch: computed in slices, each slice adds its share."""
    from dataclasses import replace

    from edgeintent.toolkit.training.trainer import train

    prep = prepared_source()
    cfg = replace(FAST, batch_size=64)
    opts = {"transfer": "none", "calibrator": 50.0}  # independent towers start with p_buy > p_engage on many rows
    whole = train("aitm", None, cfg, prepared=prep, options=opts).model.state_dict()
    parts = train("aitm", None, replace(cfg, micro_batches=2), prepared=prep, options=opts).model.state_dict()
    for k in whole:
        torch.testing.assert_close(parts[k], whole[k], rtol=1e-4, atol=1e-5)
