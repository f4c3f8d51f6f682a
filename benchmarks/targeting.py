"""User targeting with ``find`` on held-out Taobao users: zero-shot, few-shot and their baselines, side by side.

    python benchmarks/targeting.py --json
    python benchmarks/targeting.py --epochs 8 --draws 5 --write-results                 # docs/results/targeting.{json,md}
    python benchmarks/targeting.py --seed 1 --name targeting-seed1 --write-results     # another user split
    python benchmarks/targeting.py --seeds 0,1,2 --bundle /tmp/fb{seed} --write-results  # three splits and their means

Users are split once (seed ``--seed``): 60 % train ``find`` (pretraining + alignment; 20 % of those are
its validation users for early stopping), 40 % are held out and never seen in training. Every held-out
user is scored at T = the data's last event − 72 h: the user encoder reads the past window (the last
``max_len`` cloud events before T), and a demand's ground truth is whether its clause holds in the
future window (T, T + 72 h] (``features.text``, the same table that wrote the training sentences).

Demands (≥ 20, from the template table): buy / add to cart / browse / favourite in the categories most
often in the *training* users' futures, "buy anything" and "add at least 3 items to the cart"; a demand
is kept when 3 or more held-out users satisfy it. Methods, per demand:

- ``zero_shot``: cos(user embedding, demand embedding);
- ``history``: the history rule, the same clause counted on the past window the encoder reads;
- ``few_shot``: prompt tuning on 5 positive + 5 negative held-out seed users (triplet loss, towers frozen,
  anchored at the zero-shot demand, steps chosen by leave-one-out over the seeds; ``training/targeting.py``),
  mean over ``--draws`` seed draws, scored on the other held-out users;
- ``u_mlp``: an MLP on the embeddings trained on the same seeds (FIND's One4all baseline);
- ``zero_shot_same_rows``: zero-shot on the rows few-shot and U-MLP are scored on (seeds left out);
- ``gbdt``: a supervised gradient-boosted classifier on past-window aggregates (counts per action and,
  for a category demand, per action in that category), trained with full labels on the training users
  at T: an upper reference, not a competitor.

Metrics: AUC, and accuracy / precision / recall at K = the true number of targeted users (as the paper's
tables; with K equal to the true count, precision equals recall). The linear probe (§5.1.3): "buys within
the next 3 days" from the embedding, a logistic regression fitted on 1/5 of the held-out users and scored
on the other 4/5 (AUC and KS; mean over ``PROBE_DRAWS`` draws of the fitting users, the same draws for
both feature sets), beside the same probe on the past window's aggregates; and the same probe
at every decision point of the held-out users (label ``buy_long``, a purchase within 72 h of t), beside a
logistic regression on the toolkit's window aggregates (``models/gbdt.py``). For both probes the gap
(embedding − aggregates) has a paired bootstrap interval over the scored users (``paired_gap``).

``embedding_stats`` describes the held-out users' embeddings: the variance of each dimension and the
effective rank (exp of the entropy of the covariance's eigenvalue shares; 32 = every direction used
equally, 1 = collapsed onto a line).

With ``--seeds 0,1,2`` the splits run one after the other (``--bundle`` may hold ``{seed}``) and the
result holds each split and the means over splits (``splits``, ``across``).

Skips (``{"skipped": …}``) when the Taobao sample is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import warnings  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore", module="sklearn")  # MLPClassifier's convergence notes on 10 seed users

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)

TAOBAO = ROOT.parent / "shared" / "data" / "taobao_userbehavior" / "UserBehavior_sample.csv"
HORIZON_H = 72
PROBE_DRAWS = 5
#: bootstrap replicates of the paired probe gap (embedding − aggregates)
BOOTSTRAP = 200
ACTIONS = ("view", "fav", "cart", "buy")


def at_k(y: np.ndarray, s: np.ndarray) -> dict:
    """Accuracy, precision and recall when the K = sum(y) best-scored rows are selected."""
    k = int(y.sum())
    sel = np.zeros(len(y), bool)
    sel[np.argsort(-s, kind="stable")[:k]] = True
    tp = int((sel & (y == 1)).sum())
    return {"accuracy": float((sel == (y == 1)).mean()), "precision": tp / max(k, 1), "recall": tp / max(k, 1)}


def scores_row(y, s) -> dict:
    from edgeintent.toolkit.training.metrics import auc

    return {"auc": auc(y, s), **at_k(y, s)}


def aggregates(ix, users, t0, T, last_n, clause=None) -> np.ndarray:
    """Past-window aggregates per user: log1p counts per action, distinct categories, and for a category
    demand the counts per action in that category (the window the encoder reads)."""
    c = ix.streams["cloud"]
    a, b = ix._bounds("cloud", users, t0, T, last_n["cloud"])
    feats = []
    for act in ACTIONS:
        hit = np.concatenate([[0], np.cumsum(c["action"] == act)])
        feats.append(np.log1p(hit[b] - hit[a]))
    feats.append(np.log1p(b - a))
    feats.append(np.array([len(np.unique(c["category_id"][i:j])) for i, j in zip(a, b)], float))
    if clause is not None and clause[1] is not None:
        for act in ACTIONS:
            hit = np.concatenate([[0], np.cumsum((c["action"] == act) & (c["category_id"] == clause[1]))])
            feats.append(np.log1p(hit[b] - hit[a]))
    return np.stack(feats, 1)


def probe_draws(feats: np.ndarray, y: np.ndarray, users: np.ndarray, seed: int, runs: list | None = None) -> dict:
    """``linear_probe`` over PROBE_DRAWS draws of the fitting users (seed·100 + k): mean AUC and KS, and each draw's.
    ``runs``: receives each draw's result with its scored rows and scores (for ``paired_gap``)."""
    from edgeintent.toolkit.training.find import linear_probe

    draws = [linear_probe(feats, y, users, seed * 100 + k, keep_scores=True) for k in range(PROBE_DRAWS)]
    if runs is not None:
        runs.extend(draws)
    return {"auc": float(np.mean([r["auc"] for r in draws])), "ks": float(np.mean([r["ks"] for r in draws])),
            "fit_rows": draws[0]["fit_rows"], "scored_rows": draws[0]["scored_rows"],
            "auc_draws": [round(r["auc"], 4) for r in draws]}  # fmt: skip


def paired_gap(a: list[dict], b: list[dict], y: np.ndarray, users: np.ndarray, seed: int) -> dict:
    """AUC of probe ``a`` minus probe ``b`` (the same draws of fitting users, so the same scored rows), mean over
    the draws, with a paired bootstrap over the scored users: each of BOOTSTRAP replicates resamples the users
    of every draw (with their rows) and takes the mean gap over the draws; ``ci95`` its 2.5 and 97.5 percentiles.
    ``replicates`` are kept so that splits can be pooled (``across``)."""
    from edgeintent.toolkit.training.metrics import auc

    rng = np.random.default_rng(seed)
    gaps, boot = [], np.zeros(BOOTSTRAP)
    for ra, rb in zip(a, b):
        rows = ra["scored"]
        assert np.array_equal(rows, rb["scored"]), "paired probes must score the same rows"
        yy, sa, sb = y[rows], ra["scores"], rb["scores"]
        gaps.append(auc(yy, sa) - auc(yy, sb))
        uniq, inv = np.unique(users[rows], return_inverse=True)
        members = np.split(np.argsort(inv, kind="stable"), np.cumsum(np.bincount(inv))[:-1])
        for i in range(BOOTSTRAP):
            pick = np.concatenate([members[j] for j in rng.integers(0, len(uniq), len(uniq))])
            boot[i] += (auc(yy[pick], sa[pick]) - auc(yy[pick], sb[pick])) if 0 < yy[pick].mean() < 1 else 0.0
    boot /= len(a)
    return {"gap": float(np.mean(gaps)), "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "replicates": [round(float(x), 5) for x in boot]}  # fmt: skip


def before_l2(model, samples, idx: np.ndarray) -> np.ndarray:
    """The user encoder's output before its L2 normalisation (fusion output), rows ``idx``."""
    import torch

    from edgeintent.toolkit.models.exportable import batch_for

    model.eval()
    with torch.no_grad():
        return np.concatenate([model.fusion(model.encode(batch_for(model, samples, idx[lo : lo + 2048]))).numpy()
                               for lo in range(0, len(idx), 2048)])  # fmt: skip


def linear_r2(emb: np.ndarray, feats: np.ndarray, names: list[str]) -> dict:
    """How much of each aggregate a linear map of the embedding recovers: 3-fold cross-validated R² of a ridge
    regression (scikit-learn ``RidgeCV``), per aggregate column with any variance."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import cross_val_score

    return {n: round(float(cross_val_score(RidgeCV(alphas=np.logspace(-3, 3, 7)), emb, feats[:, j], cv=3, scoring="r2").mean()), 3)
            for j, n in enumerate(names) if feats[:, j].std() > 0}  # fmt: skip


def embedding_stats(emb: np.ndarray) -> dict:
    var = emb.var(0)
    ev = np.clip(np.linalg.eigvalsh(np.cov(emb.T))[::-1], 0, None)
    share = ev / ev.sum()
    return {"dim": int(emb.shape[1]), "variance_min": float(var.min()), "variance_median": float(np.median(var)),
            "variance_max": float(var.max()), "effective_rank": float(np.exp(-(share * np.log(share + 1e-12)).sum())),
            "top3_share": [round(float(x), 3) for x in share[:3]], "mean_cosine": float((emb @ emb.T).mean())}  # fmt: skip


METHODS = (("zero_shot", "zero-shot"), ("history", "history rule (the demand's clause on the past window)"),
           ("gbdt", "supervised GBDT on past-window aggregates, full labels (upper reference)"),
           ("few_shot", "few-shot, 5 + 5 seeds (mean of the draws)"), ("zero_shot_same_rows", "zero-shot on the few-shot rows"),
           ("u_mlp", "U-MLP (MLP on embeddings, same seeds)"))  # fmt: skip


def _split_table(r: dict) -> list[str]:
    out = [f"Held-out users: {r['test_users']} ({r['train_users']} trained on); options {r['options'] or 'default'}; "
           f"{r['epochs']} epochs, {r['draws']} seed draws.", "",
           "| method | AUC | accuracy | precision = recall at K | demands |", "|---|---|---|---|---|"]
    for key, label in METHODS:
        a = r["mean"].get(key)
        if a:
            out.append(f"| {label} | {a['auc']:.3f} | {a['accuracy']:.3f} | {a['precision']:.3f} | {a['demands']} |")
    draws = len(r["probe"]["embedding"].get("auc_draws", [0]))
    how = f"mean of {draws} fitting draws" if draws > 1 else "one fitting draw"
    out += ["", f"| linear probe ({how}) | rows fit / scored | embedding AUC / KS | aggregates AUC / KS |", "|---|---|---|---|"]
    for name, p in (("per user at T: " + r["probe"]["label"], r["probe"]),
                    ("per decision point: " + r["probe_decision_points"]["label"], r["probe_decision_points"])):
        e, g = p["embedding"], p["aggregates_logistic"]
        out.append(f"| {name} | {e['fit_rows']:,} / {e['scored_rows']:,} | {e['auc']:.3f} / {e['ks']:.3f} | "
                   f"{g['auc']:.3f} / {g['ks']:.3f} |")
    out += _gap_lines(r["probe"], r["probe_decision_points"])
    st = r.get("embedding_stats")
    if st:
        out += ["", f"Embeddings of the held-out users: effective rank {st['effective_rank']:.1f} of {st['dim']}, variance per "
                    f"dimension {st['variance_min']:.4f}–{st['variance_max']:.4f}, mean pairwise cosine {st['mean_cosine']:.3f}; "
                    f"few-shot steps chosen by leave-one-out: mean {r.get('few_shot_steps_mean') or float('nan'):.1f}, "
                    f"0 in {100 * (r.get('few_shot_zero_share') or float('nan')):.0f} % of the tunings."]  # fmt: skip
    return out


def _gap_lines(per_user: dict, per_point: dict) -> list[str]:
    """The probes' paired gap (embedding − aggregates) with its bootstrap interval, when the result has it."""
    parts = [f"{name} {g['gap']:+.3f} [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}]"
             for name, p in (("per user at T", per_user), ("per decision point", per_point))
             if (g := p.get("embedding_minus_aggregates"))]  # fmt: skip
    return ["", f"Probe AUC of the embedding minus that of the aggregates, with a 95 % paired bootstrap interval over the "
                f"scored users ({BOOTSTRAP} replicates; splits pooled by averaging their replicates): {'; '.join(parts)}."] if parts else []


def table(r: dict) -> str:
    """docs/results/NAME.md: mean over demands per method, then the linear probes; with several splits,
    each method's AUC per split and the mean over splits."""
    if "splits" not in r:
        return "\n".join(_split_table(r))
    seeds = r["seeds"]
    out = [f"User splits {', '.join(map(str, seeds))}: mean over each split's demands, then the mean over splits.", "",
           "| method | AUC per split | mean AUC | mean accuracy | mean precision = recall at K | demands |",
           "|---|---|---|---|---|---|"]
    for key, label in METHODS:
        a = r["across"]["methods"].get(key)
        if a:
            per = " / ".join(f"{x:.3f}" for x in a["auc_splits"])
            out.append(f"| {label} | {per} | **{a['auc']:.3f}** | {a['accuracy']:.3f} | {a['precision']:.3f} | "
                       f"{' / '.join(map(str, a['demands']))} |")
    out += ["", f"| linear probe (mean of {PROBE_DRAWS} fitting draws per split) | features | AUC per split | mean AUC | mean KS |",
            "|---|---|---|---|---|"]
    for key, label in (("probe", "per user at T, buys within 72 h"), ("probe_decision_points", "per decision point, buy_long")):
        for feat, name in (("embedding", "on-device embedding"), ("embedding_before_l2", "the embedding before its L2 normalisation"),
                           ("aggregates_logistic", "past-window aggregates")):  # fmt: skip
            a = r["across"][key].get(feat)
            if a is None:
                continue
            out.append(f"| {label} | {name} | {' / '.join(f'{x:.3f}' for x in a['auc_splits'])} | **{a['auc']:.3f}** | {a['ks']:.3f} |")
    out += _gap_lines(r["across"]["probe"], r["across"]["probe_decision_points"])
    r2 = r["across"].get("aggregates_in_embedding_r2")
    if r2:
        shown = [n for n in r2 if n.endswith((".count", "action=view", "action=cart", "action=fav", "action=buy")) and "last_60s" not in n]
        out += ["", "Cross-validated R² of a ridge regression from the embedding to each past-window aggregate (per split): "
                + "; ".join(f"{n.split('.', 1)[1]} {' / '.join(f'{x:.2f}' for x in r2[n])}" for n in shown) + "."]
    st = r["across"]["embedding_stats"]
    out += ["", f"Effective rank of the held-out embeddings per split: {' / '.join(f'{x:.1f}' for x in st['effective_rank'])} "
                f"(of {st['dim']})" + (f"; few-shot steps chosen by leave-one-out: mean {st['few_shot_steps_mean']:.1f}, "
                f"0 in {100 * st['few_shot_zero_share']:.0f} % of the tunings." if st["few_shot_steps_mean"] is not None else ".")]  # fmt: skip
    return "\n".join(out)


def across(runs: list[dict]) -> dict:
    """Means over splits of each method's per-split mean, and of the probes."""
    out = {"methods": {}}
    for m in ("zero_shot", "history", "few_shot", "zero_shot_same_rows", "u_mlp", "gbdt"):
        vals = [r["mean"][m] for r in runs if r["mean"].get(m)]
        if vals:
            out["methods"][m] = {k: float(np.mean([v[k] for v in vals])) for k in ("auc", "accuracy", "precision", "recall")}
            out["methods"][m].update(auc_splits=[v["auc"] for v in vals], demands=[v["demands"] for v in vals])
    for key in ("probe", "probe_decision_points"):
        out[key] = {f: {"auc": float(np.mean([r[key][f]["auc"] for r in runs])), "ks": float(np.mean([r[key][f]["ks"] for r in runs])),
                        "auc_splits": [r[key][f]["auc"] for r in runs]}
                    for f in ("embedding", "embedding_before_l2", "aggregates_logistic") if all(f in r[key] for r in runs)}  # fmt: skip
        gaps = [r[key].get("embedding_minus_aggregates") for r in runs]
        if all(gaps):  # splits pooled: the mean gap, and the mean of the splits' replicates
            boot = np.mean([g["replicates"] for g in gaps], 0)
            out[key]["embedding_minus_aggregates"] = {"gap": float(np.mean([g["gap"] for g in gaps])),
                                                      "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
                                                      "gap_splits": [g["gap"] for g in gaps], "ci95_splits": [g["ci95"] for g in gaps]}  # fmt: skip
    r2 = [r["probe_decision_points"].get("aggregates_in_embedding_r2") for r in runs]
    if all(r2):
        out["aggregates_in_embedding_r2"] = {n: [x[n] for x in r2] for n in r2[0] if all(n in x for x in r2)}
    tuned = [r for r in runs if r["few_shot_steps_mean"] is not None]
    out["embedding_stats"] = {"dim": runs[0]["embedding_stats"]["dim"],
                              "effective_rank": [r["embedding_stats"]["effective_rank"] for r in runs],
                              "few_shot_steps_mean": float(np.mean([r["few_shot_steps_mean"] for r in tuned])) if tuned else None,
                              "few_shot_zero_share": float(np.mean([r["few_shot_zero_share"] for r in tuned])) if tuned else None}  # fmt: skip
    return out

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(TAOBAO))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--draws", type=int, default=5, help="seed draws per demand for few-shot and U-MLP (0: skip them)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", default=None, help="comma list of user splits run one after the other, e.g. 0,1,2 (overrides --seed)")
    ap.add_argument("--set", dest="options", action="append", default=[], help="find option KEY=VALUE")
    ap.add_argument("--bundle", default=None, help="reuse (or write) the trained bundle here ({seed} is replaced by the split)")
    ap.add_argument("--name", default="targeting", help="results name (docs/results/NAME.{json,md} with --write-results)")
    _results.add_args(ap)
    args = ap.parse_args()
    if not Path(args.data).exists():
        print(json.dumps({"skipped": f"Taobao sample not found at {args.data}"}))
        return

    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    runs = []
    for seed in seeds:
        bundle = args.bundle.replace("{seed}", str(seed)) if args.bundle else None
        if bundle and len(seeds) > 1 and "{seed}" not in args.bundle:
            bundle = f"{bundle}-seed{seed}"
        runs.append(run_split(args, seed, bundle))
        if len(seeds) > 1 and not args.json:
            print(f"split {seed}: done in {runs[-1]['seconds']} s", flush=True)
    result = runs[0] if len(seeds) == 1 else {"seeds": seeds, "splits": runs, "across": across(runs)}
    _results.emit(args.name, result, args, table=table)
    if args.json:
        return
    print(table(result))


def run_split(args, seed: int, bundle_arg: str | None) -> dict:
    import tempfile

    import torch
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neural_network import MLPClassifier

    from edgeintent.cli.common import parse_options
    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.data.dataset import Dataset
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import split_users
    from edgeintent.toolkit.features.text import WindowIndex, sentence, table_for
    from edgeintent.toolkit.models.exportable import predict_embeddings
    from edgeintent.toolkit.training.targeting import prompt_tune, prompted_scores, user_samples, zero_shot
    from edgeintent.toolkit.training.trainer import TrainConfig, train_bundle

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    ds = load_source(f"taobao:{args.data}")
    train_users, test_users = split_users(ds.events.users(), 0.4, seed)
    train_ds = Dataset(ds.name, ds.events.filter_users(train_users), None, ds.utc_offset_ms, ds.meta)
    bundle_dir = Path(bundle_arg) if bundle_arg else Path(tempfile.mkdtemp(prefix="find-bench-")) / "find"
    summary = None
    if not bundle_dir.exists():
        cfg = TrainConfig(epochs=args.epochs, batch_size=256, patience=3, seed=seed, golden_rows=64)
        summary = train_bundle("find", ds.name, bundle_dir, cfg, options=parse_options(tuple(args.options)), ds=train_ds)
    train_s = time.perf_counter() - t_start
    bundle = load_bundle(bundle_dir)
    model = load_model(bundle)
    if summary is None:  # a reused bundle: its own training summary
        summary = json.loads((bundle_dir / "metrics.json").read_text())
        train_s = summary["train_seconds"]
    table = table_for(model.streams)
    span = ds.events.time_span()
    T = int(span[1]) - HORIZON_H * 3_600_000
    last_n = {"cloud": bundle.spec.max_len["cloud"]}
    ix = WindowIndex(table, ds.events)

    def population(users):
        ev = ds.events.filter_users(users)
        samples, _ = user_samples(ev, bundle.spec, model.streams, T)
        u = samples.user_id
        fut = ix.clauses(u, np.full(len(u), T), np.full(len(u), T + HORIZON_H * 3_600_000))
        return samples, u, fut

    te_samples, te_users, te_future = population(test_users)
    tr_samples, tr_users, tr_future = population(train_users)
    emb = predict_embeddings(model, te_samples)["embedding"]
    zeros = np.zeros(len(te_users), np.int64)

    # demands: the most frequent clauses among the training users' futures, per template
    from collections import Counter

    freq = Counter(c for f in tr_future for c in set(f))
    words = set(model.vocab)
    per_template = {"buy": 8, "cart": 8, "browse": 8, "fav": 4, "buy_any": 1, "cart_many": 1}
    demands = []
    for name, n in per_template.items():
        cands = [c for c, _ in freq.most_common() if c[0] == name and (c[1] is None or c[1] in words)]
        demands += cands[:n]
    rows, steps_chosen, stayed = [], [], []
    rng = np.random.default_rng(seed)
    for clause in demands:
        y = np.array([clause in f for f in te_future], np.int8)
        if y.sum() < 3 or y.sum() > len(y) - 3:
            continue
        text = sentence(table, [clause])
        zs = zero_shot(model, emb, text)
        hist = ix.counts(clause, te_users, zeros, np.full(len(te_users), T), last_n).astype(float)
        ytr = np.array([clause in f for f in tr_future], np.int8)
        Xtr = aggregates(ix, tr_users, np.zeros(len(tr_users), np.int64), np.full(len(tr_users), T), last_n, clause)
        Xte = aggregates(ix, te_users, zeros, np.full(len(te_users), T), last_n, clause)
        gb = HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(Xtr, ytr) if 0 < ytr.mean() < 1 else None
        row = {"demand": text, "positives": int(y.sum()), "users": int(len(y)), "zero_shot": scores_row(y, zs),
               "history": scores_row(y, hist),
               "gbdt": scores_row(y, gb.predict_proba(Xte)[:, 1]) if gb is not None else None}  # fmt: skip
        few, mlp, same = [], [], []
        pos_all, neg_all = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        if len(pos_all) >= 6 and args.draws > 0:
            for d in range(args.draws):
                pos = rng.choice(pos_all, 5, replace=False)
                neg = rng.choice(neg_all, 5, replace=False)
                rest = np.setdiff1d(np.arange(len(y)), np.concatenate([pos, neg]))
                info = {}
                prompt = prompt_tune(model, emb, text, pos, neg, seed=seed + d, info=info)
                steps_chosen.append(info["steps"])
                stayed.append(info["choice"] == "steps=0")  # a move toward the seeds has 0 prompt steps
                fs = prompted_scores(model, emb, text, prompt)
                few.append(scores_row(y[rest], fs[rest]))
                same.append(scores_row(y[rest], zs[rest]))
                clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, random_state=seed + d)
                clf.fit(emb[np.concatenate([pos, neg])], np.r_[np.ones(5), np.zeros(5)])
                mlp.append(scores_row(y[rest], clf.predict_proba(emb[rest])[:, 1]))
            mean = lambda rs: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}  # noqa: E731
            row.update(few_shot=mean(few), u_mlp=mean(mlp), zero_shot_same_rows=mean(same))
        rows.append(row)

    def avg(method):
        vals = [r[method] for r in rows if r.get(method)]
        return {k: float(np.mean([v[k] for v in vals])) for k in vals[0]} | {"demands": len(vals)} if vals else None

    methods = ("zero_shot", "history", "few_shot", "zero_shot_same_rows", "u_mlp", "gbdt")
    # linear probe: buys within the next 3 days, from the embedding vs from the same past window's aggregates
    ybuy = np.array([("buy_any", None) in f for f in te_future], np.int8)
    agg = aggregates(ix, te_users, zeros, np.full(len(te_users), T), last_n)
    runs_e, runs_a = [], []
    probe = {"label": "buys within the next 72 h", "rate": float(ybuy.mean()),
             "embedding": probe_draws(emb, ybuy, te_users, seed, runs_e),
             "aggregates_logistic": probe_draws(agg, ybuy, te_users, seed, runs_a)}  # fmt: skip
    probe["embedding_minus_aggregates"] = paired_gap(runs_e, runs_a, ybuy, te_users, seed)
    # the same probe at every decision point of the held-out users (label buy_long: a purchase within 72 h
    # of t, observed rows only), beside a logistic regression on the toolkit's window aggregates (gbdt.py)
    from edgeintent.toolkit.features import build_samples
    from edgeintent.toolkit.models.gbdt import aggregate_features, aggregate_names

    dp = build_samples(ds.events.filter_users(test_users), bundle.spec, None, streams=list(model.streams))
    obs = dp.observed["buy_long"]
    y_dp, u_dp = dp.labels["buy_long"][obs].astype(np.int8), dp.user_id[obs]
    emb_dp = predict_embeddings(model, dp)["embedding"][obs]
    agg_dp = np.nan_to_num(aggregate_features(dp, bundle.spec, tuple(model.streams), False))[obs]
    probe_dp = {"label": "buy_long (a purchase within 72 h of each decision point)", "rows": int(obs.sum()),
                "rate": float(y_dp.mean()),
                "embedding": probe_draws(emb_dp, y_dp, u_dp, seed, runs_e := []),
                "embedding_before_l2": probe_draws(before_l2(model, dp, np.flatnonzero(obs)), y_dp, u_dp, seed),
                "aggregates_logistic": probe_draws(agg_dp, y_dp, u_dp, seed, runs_a := []),
                "aggregates_in_embedding_r2": linear_r2(emb_dp, agg_dp, aggregate_names(bundle.spec, tuple(model.streams), False))}  # fmt: skip
    probe_dp["embedding_minus_aggregates"] = paired_gap(runs_e, runs_a, y_dp, u_dp, seed)
    result = {
        "data": args.data, "train_users": int(len(train_users)), "test_users": int(len(test_users)),
        "reference_time_ms": T, "horizon_h": HORIZON_H, "epochs": args.epochs, "draws": args.draws,
        "options": parse_options(tuple(args.options)), "parameters": summary and summary["parameters"],
        "train_history": summary and summary["history"], "train_seconds": round(train_s, 1),
        "seed": seed, "embedding_stats": embedding_stats(emb), "few_shot_steps_mean": float(np.mean(steps_chosen)) if steps_chosen else None,
        "few_shot_zero_share": float(np.mean(stayed)) if stayed else None,
        "mean": {m: avg(m) for m in methods}, "probe": probe, "probe_decision_points": probe_dp, "demands": rows,
        "seconds": round(time.perf_counter() - t_start, 1),
    }  # fmt: skip
    return result


if __name__ == "__main__":
    main()
