"""find: the user encoder's signature and exports, the template language, the self-supervised targets,
the text tower's vocabulary, and `edgeintent target` (zero-shot, few-shot, one-line refusals)."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from edgeintent.cli import main
from edgeintent.errors import ConfigError, DataError
from edgeintent.toolkit.features import fit_spec
from edgeintent.toolkit.features.text import IDLE, PREFIX, TABLES, WindowIndex, sentence, table_for, tokenize
from edgeintent.toolkit.models import create_model, get_entry
from edgeintent.toolkit.training.find import cyclic_partners, forecast_targets, info_nce

from tests.conftest import SRC


@pytest.fixture(scope="module")
def sim_ds():
    from edgeintent.toolkit.data.sources import load_source

    return load_source(SRC)


@pytest.fixture(scope="module")
def spec(sim_ds):
    return fit_spec(sim_ds.events)


@pytest.fixture(scope="module")
def bundle(trained):
    return trained("find")


def test_signature_is_one_normalised_embedding_and_options_are_checked(spec):
    model = create_model("find", spec).eval()
    sig = model.signature()
    assert sig.outputs == ("embedding",) and sig.embeddings == ("embedding",) and model.tasks == ()
    assert "coupon" not in sig.input_names and get_entry("find").trainer
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import build_samples
    from edgeintent.toolkit.models.exportable import predict_embeddings, torch_outputs, feeds

    ds = load_source("sim:60:5")
    s = build_samples(ds.events, spec, ds.decisions)
    e = predict_embeddings(model, s)["embedding"]
    assert e.shape == (len(s), 32)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    out = torch_outputs(model, feeds(model, s, np.arange(5)))
    assert out["embedding"].shape == (5, 32)
    # the category stays an input (a demand names categories); the item id does not
    assert model.hparams["drop_features"] == ("cloud.item",)
    for bad, msg in (({"dim": 0}, "dim must be a positive"), ({"cyclic": -1}, "cyclic must be"),
                     ({"text_width": 30, "text_heads": 4}, "multiple of text_heads"), ({"vocab": ("a",)}, "vocab must")):  # fmt: skip
        with pytest.raises(ConfigError, match=msg):
            create_model("find", spec, **bad)


def test_template_language_and_windows(sim_ds):
    table = table_for(("gesture", "click", "cloud"))
    assert table is TABLES["sim"] and table_for(("cloud",)) is TABLES["taobao"]
    assert sentence(table, [("buy", "17"), ("click", "search")]) == f"{PREFIX} buy in category 17 and click search"
    assert sentence(table, []) == f"{PREFIX} {IDLE}"
    assert tokenize("Users who will BUY in category 17.") == ["users", "who", "will", "buy", "in", "category", "17"]
    ix = WindowIndex(table, sim_ds.events)
    c = ix.streams["cloud"]
    users = np.unique(c["user"])[:40]
    t = np.array([c["ts"][c["user"] == u][len(c["ts"][c["user"] == u]) // 2] for u in users])
    fut = ix.clauses(users, t, t + table.horizon_ms)
    past = ix.clauses(users, t - 10**12, t, last_n={"cloud": 20})
    for i, u in enumerate(users):
        mine = (c["user"] == u) & (c["ts"] > t[i]) & (c["ts"] <= t[i] + table.horizon_ms)
        bought = set(c["category_id"][mine & (c["action"] == "buy")])
        assert {v for n, v in fut[i] if n == "buy"} <= bought  # at most max_values of them, all real
        assert (("buy_any", None) in fut[i]) == bool(bought)
        assert ix.holds(("buy_any", None), users[i : i + 1], t[i : i + 1], t[i : i + 1] + table.horizon_ms)[0] == bool(bought)
        # the past window never sees the future
        before = (c["user"] == u) & (c["ts"] <= t[i])
        assert {v for n, v in past[i] if n == "browse"} <= set(c["category_id"][before & (c["action"] == "view")])
    n = ix.counts(("browse", fut[0][0][1] if fut[0] and fut[0][0][1] else "0"), users, t, t + table.horizon_ms)
    assert n.dtype.kind == "i" and (n >= 0).all()


def test_past_clauses_describe_the_window_the_encoder_reads(sim_ds):
    from edgeintent.toolkit.training.find import past_clauses

    table = TABLES["sim"]
    c = WindowIndex(table, sim_ds.events).streams["cloud"]
    buys = np.flatnonzero(c["action"] == "buy")[:30]
    s = SimpleNamespace(user_id=c["user"][buys], t_ms=c["ts"][buys])  # decision points at a purchase
    past = past_clauses(table, sim_ds.events, s, {"gesture": 50, "click": 20, "cloud": 3})
    for i, j in enumerate(buys):
        mine = np.flatnonzero((c["user"] == c["user"][j]) & (c["ts"] < c["ts"][j]))[-3:]  # the last 3 events before t
        seen = c["action"][mine]
        assert (("buy_any", None) in past[i]) == bool((seen == "buy").any())  # the purchase at t itself is not in it
        assert {v for n, v in past[i] if n == "browse"} <= set(c["category_id"][mine][seen == "view"])


def test_forecast_targets_and_cyclic_partners():
    H = 3_600_000
    s = SimpleNamespace(user_id=np.array([1, 1, 1, 1, 2, 2]), t_ms=np.array([0, H // 2, H + 5, 24 * H, 0, 3 * H]))
    tg = forecast_targets(s, window_ms=H, steps=2)
    # user 1 at 0: last point in (0, H] is row 1; in (H, 2H] row 2; user 2 at 0: nothing within 2 h
    assert tg[:, 0].tolist() == [1, 2] and tg[:, 4].tolist() == [-1, -1]
    assert tg[:, 3].tolist() == [-1, -1] and tg[0, 5] == -1  # never another user's row
    cyc = cyclic_partners(s, cycle_ms=24 * H, tolerance_ms=H)
    assert cyc.tolist() == [3, -1, -1, -1, -1, -1]


def test_info_nce_soft_positives():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    assert float(info_nce(a, a, 0.1)) < float(info_nce(a, a.roll(1, 0), 0.1))
    pos = torch.eye(6, dtype=torch.bool)
    assert float(info_nce(a, a, 0.1, pos)) == pytest.approx(float(info_nce(a, a, 0.1)), rel=1e-5)


def test_pretraining_stages_and_ablations(tmp_path, prepared_source):
    from edgeintent.toolkit.training.trainer import TrainConfig, train_bundle

    cfg = TrainConfig(epochs=3, batch_size=64, patience=3, golden_rows=8)
    prep = prepared_source()
    s = train_bundle("find", SRC, tmp_path / "a", cfg, options={"pretrain_share": 0.34}, prepared=prep)
    assert [h["stage"] for h in s["history"]] == ["pretrain", "align", "align"][: len(s["history"])]
    assert np.isnan(s["history"][0]["valid_auc"]) and 0 <= s["history"][1]["valid_auc"] <= 1
    off = train_bundle("find", SRC, tmp_path / "b", TrainConfig(epochs=1, batch_size=64, golden_rows=8),
                       options={"forecast": 0, "cyclic": 0, "pretrain_share": 0.5, "past_align": 0}, prepared=prep)  # fmt: skip
    assert [h["stage"] for h in off["history"]] == ["align"]  # nothing to pretrain with both losses off
    # the past-window alignment is on by default and off with past_align=0
    from edgeintent.toolkit.bundle import load_bundle, load_model

    assert load_model(load_bundle(tmp_path / "a")).hparams["past_align"] == 1.0
    assert load_model(load_bundle(tmp_path / "b")).hparams["past_align"] == 0.0
    assert {"buy_rt", "buy_long"} <= set(s["probe"]) and 0 <= s["probe"]["buy_rt"]["auc"] <= 1
    assert s["vocabulary"] > len(TABLES["sim"].words())  # slot values (categories, widgets) from the data


def _run(args):
    res = CliRunner().invoke(main, args)
    return res.exit_code, res.stdout, res.stderr


def test_target_zero_shot_few_shot_and_refusals(bundle, tmp_path):
    from edgeintent.toolkit.bundle import load_bundle, load_model

    model = load_model(load_bundle(bundle))
    cat = next(w for w in model.vocab if w.isdigit() and w != "3")
    demand = f"users who will browse category {cat}"
    out = tmp_path / "users.parquet"
    code, stdout, _ = _run(["target", str(bundle), "--data", SRC, "--demand", demand, "--top", "7", "--out", str(out), "--json"])
    assert code == 0, stdout
    rep = json.loads(stdout)
    assert rep["mode"] == "zero-shot" and rep["selected"] == 7 and rep["users"] == 400
    t = pq.read_table(out).to_pandas()
    assert list(t.columns) == ["user_id", "score", "rank", "selected"] and len(t) == 400
    assert t.selected.sum() == 7 and t[t.selected].score.min() >= t[~t.selected].score.max()
    assert t.score.between(-1.0001, 1.0001).all() and sorted(t["rank"]) == list(range(1, 401))
    code, stdout, _ = _run(["target", str(bundle), "--data", SRC, "--demand", demand, "--threshold", "0.0", "--out", str(out), "--json"])
    assert code == 0 and json.loads(stdout)["selected"] == int((pq.read_table(out).column("score").to_numpy() >= 0).sum())

    users = t.user_id.to_numpy()
    pos, neg, empty, stranger = (tmp_path / f for f in ("pos.csv", "neg.csv", "empty.csv", "stranger.csv"))
    pos.write_text("user_id\n" + "\n".join(map(str, users[:5])) + "\n")
    neg.write_text("\n".join(map(str, users[5:10])) + "\n")
    empty.write_text("user_id\n")
    stranger.write_text(f"{users.max() + 1000}\n")
    fs = tmp_path / "fs.parquet"
    code, stdout, _ = _run(["target", str(bundle), "--data", SRC, "--demand", demand, "--seed-users", str(pos),
                            "--negative-users", str(neg), "--top", "5", "--out", str(fs), "--json"])  # fmt: skip
    assert code == 0, stdout
    rep = json.loads(stdout)
    assert rep["mode"] == "few-shot" and pq.read_table(fs).num_rows == 400
    assert rep["few_shot_choice"].split("=")[0] in ("steps", "toward")
    # the towers stay frozen: few-shot tuning leaves the bundle's model as it was
    assert all(p.requires_grad for p in model.parameters())

    bad = tmp_path / "bad.parquet"
    for extra, msg in (
        (["--demand", "users who will buy organic kale"], "unknown words in the demand: organic, kale"),
        (["--demand", demand, "--seed-users", str(empty), "--negative-users", str(neg)], "no seed users"),
        (["--demand", demand, "--seed-users", str(pos), "--negative-users", str(stranger)], "1 of 1 seed users are not in the data"),
        (["--demand", demand, "--seed-users", str(pos)], "needs both --seed-users and --negative-users"),
        (["--demand", demand, "--top", "3", "--threshold", "0.1"], "not both"),
    ):  # fmt: skip
        code, _, stderr = _run(["target", str(bundle), "--data", SRC, "--out", str(bad), *extra])
        assert code == 2 and msg in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert not bad.exists()


def test_few_shot_starts_at_zero_shot_and_moves_only_when_the_seeds_say_so(bundle):
    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.models.exportable import predict_embeddings
    from edgeintent.toolkit.training.metrics import auc
    from edgeintent.toolkit.training.targeting import (CHECK_EVERY, MOVES, START, STEPS, TOWARD, prompt_tune, prompted_scores,
                                                       user_samples, zero_shot)  # fmt: skip

    b = load_bundle(bundle)
    model = load_model(b)
    ds = load_source("sim:80:5")
    samples, _ = user_samples(ds.events, b.spec, model.streams)
    emb = predict_embeddings(model, samples)["embedding"]
    cat = next(w for w in model.vocab if w.isdigit())
    demand = f"users who will browse category {cat}"
    zs = zero_shot(model, emb, demand)
    order = np.argsort(-zs)
    pos, neg = order[[1, 4, 7, 10, 13]], order[[2, 5, 8, 11, 14]]  # seeds that zero-shot cannot tell apart
    # zero steps: the anchored demand is the zero-shot demand, so the scores (and the ranking) are the same
    p0 = prompt_tune(model, emb, demand, pos, neg, steps=0)
    assert p0.zero_shot and p0.choice == START
    np.testing.assert_allclose(prompted_scores(model, emb, demand, p0), zs, atol=1e-6)
    info = {}
    p = prompt_tune(model, emb, demand, pos, neg, info=info)
    assert sorted(info["loo"]) == sorted([f"steps={k}" for k in range(0, STEPS + 1, CHECK_EVERY)] + [f"toward={a:g}" for a in TOWARD])
    assert info["choice"] == p.choice and p.choice in info["loo"]
    best = max(info["loo"].values())
    assert p.choice == START or info["loo"][p.choice] >= best - 1e-9  # zero-shot or the best mean rank
    if p.choice == START:
        np.testing.assert_allclose(prompted_scores(model, emb, demand, p), zs, atol=1e-6)
    # must not move: zero-shot already ranks the positive seeds at the top and the negatives at the bottom
    top = prompt_tune(model, emb, demand, order[:5], order[-5:], info=(info := {}))
    assert top.choice == START and top.zero_shot, info
    np.testing.assert_allclose(prompted_scores(model, emb, demand, top), zs, atol=1e-6)
    # tuned for its full budget on seeds the demand ranks the wrong way round, the prompt turns toward them
    flip_pos, flip_neg = order[-5:], order[:5]
    far = prompt_tune(model, emb, demand, flip_pos, flip_neg, steps=STEPS)
    moved = prompted_scores(model, emb, demand, far)
    assert moved[flip_pos].mean() - moved[flip_neg].mean() > zs[flip_pos].mean() - zs[flip_neg].mean()
    # must move: the users' embeddings carry a trait the demand does not name, and the seeds are drawn from it
    rng = np.random.default_rng(0)
    trait = rng.normal(size=emb.shape[1]).astype(np.float32)
    trait -= (trait @ (t0 := model.encode_texts([demand])[0].detach().numpy())) * t0  # orthogonal to the demand
    x = rng.normal(size=(300, emb.shape[1])).astype(np.float32)
    y = (x @ trait > 0.5 * np.linalg.norm(trait)).astype(np.int8)
    x = (x + 1.5 * y[:, None] * trait / np.linalg.norm(trait)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    spos, sneg = rng.choice(np.flatnonzero(y == 1), 5, replace=False), rng.choice(np.flatnonzero(y == 0), 5, replace=False)
    # (the prompt alone turns the demand too little to follow them; the moves toward the seeds can)
    tuned = prompt_tune(model, x, demand, spos, sneg, toward=MOVES, info=(info := {}))
    assert tuned.choice.startswith("toward=") and not tuned.zero_shot, info
    rest = np.setdiff1d(np.arange(300), np.r_[spos, sneg])
    assert auc(y[rest], prompted_scores(model, x, demand, tuned)[rest]) > auc(y[rest], zero_shot(model, x, demand)[rest]) + 0.2
    # the same seeds with random labels: no move
    shuffled = rng.permutation(np.r_[spos, sneg])
    assert prompt_tune(model, x, demand, shuffled[:5], shuffled[5:], toward=MOVES).choice == START
    assert all(q.requires_grad for q in model.parameters())


def test_few_shot_moves_only_on_a_significant_leave_one_out_gain():
    from edgeintent.toolkit.training.targeting import START, choose, signflip_max_p

    start = [0.5, 0.25, 0.75, 0.5, 0.5, 0.25, 0.75, 0.5, 0.5, 0.5]
    lucky = {START: start, "steps=5": start[:-1] + [1.0], "steps=10": start}  # one seed better after 5 steps, by chance
    assert choose(lucky) == START
    clear = {START: start, "steps=5": [min(1.0, x + 0.25) for x in start], "steps=10": [min(1.0, x + 0.3) for x in start]}
    assert choose(clear) == "steps=10"  # every seed ranks better
    assert choose({START: start, "steps=5": start}) == START
    # the sign-flip test is exact: every one of 10 seeds gains, by any amount, p = 1 / 2¹⁰ (only no flip reaches it)
    assert signflip_max_p({START: [0.5] * 10, "toward=1": [0.6] * 10}) == 1 / 1024
    assert signflip_max_p({START: [0.5] * 10, "toward=1": [0.5] * 10}) == 1.0
    assert signflip_max_p({START: start, "steps=5": lucky["steps=5"]}) > 0.1
    # 8 of 10 seeds gain, 2 lose as much: p = P(the flipped mean ≥ 0.6 · gain) = 56 / 1024
    eight = {START: [0.5] * 10, "toward=1": [0.6] * 8 + [0.4] * 2}
    assert signflip_max_p(eight) == 56 / 1024 and choose(eight) == START and choose(eight, alpha=0.06) == "toward=1"
    # more candidates cost power: the max over two equal candidates is no more significant than one
    assert signflip_max_p(eight | {"toward=2": [0.6] * 2 + [0.4] * 2 + [0.6] * 6}) > signflip_max_p(eight)


def test_vicreg_penalises_collapse_and_global_clauses_are_drawn(spec):
    from edgeintent.toolkit.training.find import draw_texts, vicreg

    torch.manual_seed(0)
    spread = torch.nn.functional.normalize(torch.randn(256, 32), dim=-1)
    line = torch.nn.functional.normalize(torch.randn(1, 32) + 0.05 * torch.randn(256, 32), dim=-1)
    assert float(vicreg(line)) > float(vicreg(spread)) + 0.5 and float(vicreg(spread)) < 0.2
    table = TABLES["taobao"]
    clauses = [[("browse", "7"), ("buy", "7"), ("buy_any", None)], [("browse", "3")]]
    rng = np.random.default_rng(0)
    texts, sets = draw_texts(table, clauses, np.array([0, 1] * 20), rng, global_share=1.0)
    assert set(texts[::2]) == {sentence(table, [("buy_any", None)])} and all(s == {("buy_any", None)} for s in sets[::2])
    assert set(texts[1::2]) == {sentence(table, [("browse", "3")])}
    texts, _ = draw_texts(table, clauses, np.array([0] * 40), np.random.default_rng(0))
    assert len(set(texts)) > 1  # by default the draw covers the other clauses too
    with pytest.raises(ConfigError, match="global_share"):
        create_model("find", spec, global_share=1.5)
    with pytest.raises(ConfigError, match="vicreg"):
        create_model("find", spec, vicreg=-1)


def test_target_refuses_a_bundle_without_a_text_tower(spec):
    from edgeintent.toolkit.training.targeting import check_find

    with pytest.raises(ConfigError, match="holds a dipn model; targeting needs a find bundle"):
        check_find(create_model("dipn", spec))
    with pytest.raises(DataError, match="no seed users"):
        from edgeintent.toolkit.training.targeting import read_seed_users

        read_seed_users(__file__.replace("test_find.py", "__init__.py"))


def test_parity_compares_embeddings_and_fails_on_a_drift(bundle, tmp_path):
    from edgeintent.exporters import export_bundle
    from edgeintent.parity import check_runner, run_parity, variant_batches
    from edgeintent.parity.policy import tolerance
    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.models.exportable import torch_outputs

    path = tmp_path / "b"
    shutil.copytree(bundle, path)
    export_bundle(path, "onnx")
    report = run_parity(path, ["onnx"])
    rows = {(r["target"], r["output"]): r for r in report["results"]}
    assert report["passed"] and set(rows) == {("torch", "embedding"), ("onnx", "embedding")}
    m = rows[("onnx", "embedding")]["metrics"]
    assert m["emb_max_abs"] < 1e-5 and m["cosine_min"] > 0.99999
    b = load_bundle(path)
    model = load_model(b)
    batches = variant_batches(model, b)

    def drifted(f):
        out = torch_outputs(model, f)
        e = out["embedding"].copy()
        e[:, 0] += 0.01  # one component moves: max |Δ| catches it even where the cosine barely does
        return {"embedding": e}

    res = check_runner("onnx", "fp32", "drift", "x86_64", drifted, model, b, batches, tolerance("onnx", "fp32"))
    assert not res[0].passed and any("embeddings differ" in r for r in res[0].reasons)


def test_quantized_embedding_is_small_and_judged(bundle, tmp_path):
    from edgeintent.exporters import export_bundle
    from edgeintent.parity import run_parity
    from edgeintent.quantization.select import quantize_bundle

    path = tmp_path / "q"
    shutil.copytree(bundle, path)
    export_bundle(path, "onnx")
    rep = quantize_bundle(path, "onnx", "dynamic-int8", runs=10)
    row = rep["candidates"][0]["tasks"]["embedding"]
    assert row["probe_task"] == "buy_rt" and 0 < row["emb_max_abs"] < 0.5 and 0.9 < row["cosine_min"] <= 1.0
    assert rep["installed"] == ["dynamic-int8"]
    # the three-stream encoder's int8 artifact fits the bar's 100 KB (the exporter's names alone were 55 KB of it)
    assert rep["candidates"][0]["bytes"] <= 100_000, rep["candidates"][0]["bytes"]
    report = run_parity(path, ["onnx"])
    q = [r for r in report["results"] if r["precision"] == "dynamic-int8"]
    assert q and q[0]["output"] == "embedding" and q[0]["passed"], (q[0]["reasons"], q[0]["metrics"], q[0]["tolerance"])


def test_find_refuses_another_engines_training_loop(prepared_source):
    from edgeintent.toolkit.training.trainer import TrainConfig, train

    with pytest.raises(ConfigError, match="own loop .* use --engine local"):
        train("find", None, TrainConfig(epochs=1), prepared=prepared_source(), run_torch=lambda *a, **k: ([], 0))


def _benchmark(name):
    import importlib
    import sys
    from pathlib import Path

    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module(name)


def test_benchmark_measures_what_the_embedding_keeps_and_the_step_rules():
    tg, fs = _benchmark("targeting"), _benchmark("fewshot_steps")
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(400, 8))
    feats = np.c_[emb @ rng.normal(size=8), rng.normal(size=400)]  # one aggregate in the embedding, one not
    r2 = tg.linear_r2(emb, feats, ["kept", "dropped"])
    assert r2["kept"] > 0.99 and r2["dropped"] < 0.05
    # the step rules on leave-one-out ranks: a lucky seed moves the best-mean rule, not the tests
    start = [0.5, 0.25, 0.75, 0.5, 0.5, 0.25, 0.75, 0.5, 0.5, 0.5]
    rules = fs._rules()
    lucky = {"steps=0": start, "steps=5": start[:-1] + [1.0], "steps=10": start, "toward=1": start}
    assert rules["best_mean (prompt)"](lucky) == "steps=5" and rules["best_mean (toward)"](lucky) == "steps=0"
    assert all(rules[f"{r} (prompt+toward)"](lucky) == "steps=0" for r in ("t_bonferroni", "wilcoxon_bonferroni", "signflip"))
    row = {"kind": "demand", "split": 0, "demand": "d", "truth": "d", "held": {"steps=0": 0.6, "steps=5": 0.5, "steps=10": 0.6, "toward=1": 0.7},
           "seeds_only": 0.5, "u_mlp": 0.5, "cos_30_steps": 0.99, "loo": lucky}  # fmt: skip
    s = fs.summarise([row, row | {"kind": "null"}])
    assert s["demand"]["rules"]["best_mean (prompt)"]["auc"] == 0.5 and s["demand"]["rules"]["best_mean (prompt)"]["worse"] == 1
    assert s["null"]["rules"]["signflip (prompt+toward)"]["auc"] == 0.6 and s["null"]["rules"]["signflip (prompt+toward)"]["moved"] == 0
    assert "seeds with random labels" in fs.table({"summary": s})
    # --draws 0 (no few-shot): the means over splits and the table still come out
    split = {"mean": {"zero_shot": {"auc": 0.6, "accuracy": 0.9, "precision": 0.2, "recall": 0.2, "demands": 20}},
             "probe": {f: {"auc": 0.5, "ks": 0.1} for f in ("embedding", "aggregates_logistic")},
             "probe_decision_points": {f: {"auc": 0.55, "ks": 0.1} for f in ("embedding", "embedding_before_l2", "aggregates_logistic")},
             "embedding_stats": {"dim": 32, "effective_rank": 9.0}, "few_shot_steps_mean": None, "few_shot_zero_share": None}  # fmt: skip
    split["probe_decision_points"]["aggregates_in_embedding_r2"] = {"cloud.count": 0.4, "cloud.action=buy": 0.1}
    across = tg.across([split, split])
    assert across["embedding_stats"]["few_shot_steps_mean"] is None and across["aggregates_in_embedding_r2"]["cloud.action=buy"] == [0.1, 0.1]
    text = tg.table({"seeds": [0, 1], "splits": [split, split], "across": across})
    assert "before its L2 normalisation" in text and "action=buy 0.10 / 0.10" in text


def test_paired_probe_gap_has_a_bootstrap_interval_over_users():
    tg = _benchmark("targeting")
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(120), 5)
    signal = rng.normal(size=len(users))
    y = (signal + rng.normal(size=len(users)) > 0).astype(np.int8)
    good, noise = np.c_[signal, rng.normal(size=len(users))], rng.normal(size=(len(users), 2))
    a, b, same = [], [], []
    tg.probe_draws(good, y, users, 0, a)
    tg.probe_draws(noise, y, users, 0, b)
    tg.probe_draws(good, y, users, 0, same)
    gap = tg.paired_gap(a, b, y, users, 0)
    assert gap["gap"] > 0.2 and 0 < gap["ci95"][0] < gap["gap"] < gap["ci95"][1] and len(gap["replicates"]) == tg.BOOTSTRAP
    assert tg.paired_gap(a, same, y, users, 0) | {"replicates": None} == {"gap": 0.0, "ci95": [0.0, 0.0], "replicates": None}
    split = {"probe": {"embedding_minus_aggregates": gap}, "probe_decision_points": {}}
    assert "per user at T +0." in "\n".join(tg._gap_lines(split["probe"], split["probe_decision_points"]))
