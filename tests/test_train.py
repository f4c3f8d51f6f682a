from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgeintent.cli import main
from edgeintent.toolkit.bundle import load_bundle
from edgeintent.toolkit.models import get_entry, list_models
from edgeintent.toolkit.training.trainer import TrainConfig, evaluate_bundle, train_bundle
from edgeintent.toolkit.golden import golden_samples
from edgeintent.toolkit.bundle import load_model
from edgeintent.toolkit.models.exportable import predict_embeddings, predict_logits

from tests.conftest import BRIEF, SRC

FAST = TrainConfig(**BRIEF)


@pytest.fixture(scope="module")
def prepared(prepared_source):
    return prepared_source(SRC, FAST.seed, FAST.valid_share)


@pytest.mark.parametrize("name", list_models())
def test_every_model_trains_bundles_and_reloads(trained, name):
    out = trained(name, FAST)  # the briefly trained bundle the parity tests share, trained once
    summary = trained.summaries[out]
    assert summary["model"] == name
    assert set(summary["valid"]) == set(summary["tasks"])
    for task, r in summary["valid"].items():
        assert 0.0 <= r["auc"] <= 1.0 and r["n"] > 0
    bundle = load_bundle(out)
    model = load_model(bundle)
    # the reloaded model reproduces the recorded golden outputs, edge cases included
    got = predict_logits(model, golden_samples(bundle.golden))
    for t in summary["tasks"]:
        np.testing.assert_allclose(got[t], bundle.golden[f"logit_{t}"], rtol=1e-5, atol=1e-5)
        assert np.isfinite(bundle.golden[f"logit_{t}"]).all()
    cases = set(bundle.golden["case"].tolist())
    assert {"recorded", "empty", "max_length", "long_gaps", "unknown_ids"} <= cases
    # vector outputs (find's embedding) reproduce too
    for name, v in predict_embeddings(model, golden_samples(bundle.golden)).items():
        np.testing.assert_allclose(v, bundle.golden[name], rtol=1e-5, atol=1e-5)
    # evaluation from the bundle agrees with the training summary (same validation users)
    ev = evaluate_bundle(out)
    assert ev["users"] == "valid"
    if not summary["tasks"]:  # an embedding model (find): its linear probes, on the same users
        assert ev["probe"]["buy_rt"]["auc"] == pytest.approx(summary["probe"]["buy_rt"]["auc"], abs=1e-6)
        return
    main_task = "buy_rt"
    assert ev["tasks"][main_task]["auc"] == pytest.approx(summary["valid"][main_task]["auc"], abs=1e-6)


def test_same_seed_same_weight_bytes(tmp_path, prepared):
    a = tmp_path / "a"
    b = tmp_path / "b"
    train_bundle("dipn-tiny", SRC, a, FAST, prepared=prepared)
    train_bundle("dipn-tiny", SRC, b, FAST, prepared=prepared)
    assert (a / "weights.safetensors").read_bytes() == (b / "weights.safetensors").read_bytes()
    c = tmp_path / "c"
    train_bundle("dipn-tiny", SRC, c, TrainConfig(**{**FAST.__dict__, "seed": 1}), prepared=prepared)
    assert (a / "weights.safetensors").read_bytes() != (c / "weights.safetensors").read_bytes()


def test_stream_subset_and_ablation_options(tmp_path, prepared):
    s = train_bundle("dipn", SRC, tmp_path / "b", FAST, streams=("cloud",), options={"inter": False}, prepared=prepared)
    assert s["streams"] == ["cloud"]
    model = load_model(load_bundle(tmp_path / "b"))
    assert model.streams == ("cloud",) and model.hparams["inter"] is False


def test_cli_train_eval_and_tampering(tmp_path):
    out = tmp_path / "bundle"
    args = ["train", "--model", "dipn-tiny", "--data", "sim:300:1", "--out", str(out), "--epochs", "1", "--json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["parameters"] > 0
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "already exists" in res.stderr
    plot = tmp_path / "roc.png"
    res = CliRunner().invoke(main, ["eval", str(out), "--json", "--plot", str(plot)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["tasks"]["buy_rt"]["n"] > 0 and plot.stat().st_size > 1000

    (out / "weights.pt").write_bytes(b"pickle!")
    res = CliRunner().invoke(main, ["eval", str(out)])
    assert res.exit_code == 2 and "weights.pt" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    (out / "weights.pt").unlink()
    w = out / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0x01
    w.write_bytes(bytes(data))
    res = CliRunner().invoke(main, ["eval", str(out)])
    assert res.exit_code == 2 and "weights.safetensors" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_cli_bad_train_options(tmp_path):
    base = ["train", "--data", "sim:100", "--out", str(tmp_path / "b")]
    for extra, expect in (
        (["--model", "nope"], "unknown model 'nope'"),
        (["--model", "dipn", "--set", "nope=1"], "has no option 'nope'"),
        (["--model", "dipn", "--streams", "gesture,typo"], "no stream 'typo'"),
        (["--model", "dipn", "--set", "oops"], "KEY=VALUE"),
    ):
        res = CliRunner().invoke(main, base + extra)
        assert res.exit_code == 2 and expect in res.stderr, res.stderr
    assert not (tmp_path / "b").exists()


def test_models_command_lists_registry():
    res = CliRunner().invoke(main, ["models", "--json"])
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert set(rows) == set(list_models()) >= {"dipn", "dipn-tiny", "iidn", "gbdt", "rnn"}
    for name, r in rows.items():
        if get_entry(name).kind == "torch":
            assert r["parameters"] > 1000 and r["weight_bytes"] == 4 * r["parameters"]
    assert rows["dipn-tiny"]["parameters"] < rows["dipn"]["parameters"]


def test_cross_fit_holds_each_fold_out_of_everything():
    """Every user is a test user exactly once; a fold's users take no part in the spec fit, training or early
    stopping, and their samples are the ones the other users' spec gives them (decision points included)."""
    from edgeintent.errors import ConfigError
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import build_samples, fit_spec
    from edgeintent.toolkit.training.trainer import cross_fit

    ds = load_source("sim:60:2")
    users = ds.events.users()
    folds = list(cross_fit(ds, 3, seed=1, valid_share=0.25))
    tested = np.concatenate([np.unique(f.test.user_id) for f in folds])
    assert sorted(tested.tolist()) == sorted(set(tested.tolist())) and set(tested.tolist()) <= set(users.tolist())
    decided = set(np.unique(ds.decisions.column("user_id").to_numpy()).tolist())
    assert set(tested.tolist()) == decided  # every user with a decision point is tested once
    for f in folds:
        seen = set(np.unique(f.prepared.samples.user_id).tolist())
        assert not seen & set(np.unique(f.test.user_id).tolist())
        held = ds.with_users(np.unique(f.test.user_id))
        assert held.decisions.num_rows == len(f.test)  # the sidecar's decision points, filtered with the events
        again = build_samples(held.events, f.prepared.spec, held.decisions)
        assert np.array_equal(again.labels["buy_rt"], f.test.labels["buy_rt"])
        train_users = np.unique(f.prepared.samples.user_id[f.prepared.train_idx])
        assert f.prepared.spec == fit_spec(ds.events.filter_users(train_users), utc_offset_ms=ds.utc_offset_ms)
    with pytest.raises(ConfigError, match="folds"):
        next(cross_fit(ds, 1, seed=1, valid_share=0.25))


def test_early_stopping_prefers_an_epoch_that_meets_the_models_condition():
    from edgeintent.toolkit.training.trainer import EarlyStopping

    def run(epochs, patience=9):
        m, stop = torch.nn.Linear(1, 1), EarlyStopping(patience)
        for epoch, (score, ok) in enumerate(epochs, 1):
            m.weight.data.fill_(epoch)
            if stop.update(m, score, epoch, ok):
                break
        stop.restore(m)
        assert m.weight.item() == stop.best_epoch
        return stop.best_epoch, epoch

    # a better score that breaks the condition is not kept; a feasible one after an infeasible best is
    assert run([(0.50, True), (0.60, False), (0.55, True), (0.70, False), (0.54, True)]) == (3, 5)
    assert run([(0.60, False), (0.50, True)]) == (2, 2)
    # while nothing meets it, the best score is kept
    assert run([(0.50, False), (0.60, False), (0.55, False)]) == (2, 3)
    # epochs that break it count as no gain: patience runs out
    assert run([(0.50, True), (0.90, False), (0.95, False)], patience=2) == (1, 3)
    assert run([(0.5, True), (0.6, True)]) == (2, 2)  # the plain case
