"""How the rank fusion was chosen: fusion variants judged on the TRAINING users only.

    python benchmarks/ranking_fusion.py --seeds 0,1,2,3 --write-results   # docs/results/ranking_fusion.{json,md}
    python benchmarks/ranking_fusion.py --source simctx:3000:1 --seeds 0

The held-out users of ``benchmarks/ranking.py`` play no part here. The training users of a split are
cut in two halves (the fit's own 2-fold cross-fitting); each half's requests are scored by interest,
keyword, context and popularity tables fitted on the other half (out-of-fold scores). A fusion variant
is fitted on one half's out-of-fold rows and judged (NDCG@10 over every vocabulary category, ties
broken at random, 3 seeded draws) on the other half's requests, and the other way round: two figures
per split. Variants:

- ``single-tier LR``: the per-industry logistic regression over (interest, context, keyword, recency);
- ``single-tier LR + prior``: the same with the popularity prior ``log(1 + n_c) / log(1 + max n)``;
- ``two-tier LR + prior`` (the fusion ``edgeintent rank`` fits): per tier (candidate in the user's
  profile or not) and industry, an LR over (interest, context, keyword, log(1 + w_c(t)), prior);
  the profile's candidates rank first;
- single scorers (recency, prior) and the heuristic ``recency, then popularity`` beside them.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

import _results  # noqa: E402  (benchmarks/_results.py: --json, --write-results)

from edgeintent.rank import RankConfig  # noqa: E402
from edgeintent.rank import data as D  # noqa: E402
from edgeintent.rank import fit as F  # noqa: E402
from edgeintent.rank.device import fusion_prior  # noqa: E402
from edgeintent.rank.profile import DecayRule  # noqa: E402
from edgeintent.rank.scorers import fit_fusion, fit_tiered_fusion  # noqa: E402
from edgeintent.toolkit.data.dataset import DEFAULT_SHARED_DATA  # noqa: E402
from edgeintent.toolkit.data.sources import load_source  # noqa: E402


def halves(source: str, seed: int):
    """Out-of-fold score matrices (requests × categories) of each half of the training users."""
    cfg = RankConfig(seed=seed)
    ev = D.events_of(load_source(source))
    train_u, _ = D.split_users(ev.user, cfg.test_share, cfg.seed)
    vocab = D.make_vocab(ev, train_u, cfg.vocab)
    v = len(vocab)
    idx = D.index_of(vocab, ev.cat)
    top_level = (ev.context_table or {}).get("industry_of")
    if top_level is not None:
        industry_of = np.concatenate([[0], np.asarray(top_level(vocab[1:]), np.int64)])
        industry_of = np.unique(industry_of, return_inverse=True)[1].astype(np.int64)
    else:
        industry_of = D.derive_industries(ev, train_u, idx, v, cfg.industries, cfg.seed)
    g_n = int(industry_of.max()) + 1
    hl = F.half_lives(cfg, vocab)
    req = D.build_requests(ev, idx, np.unique(ev.user), DecayRule.from_half_lives(hl, cfg.threshold, cfg.capacity))
    tr = np.flatnonzero(np.isin(req.user, train_u))
    names = D.context_names(ev)
    base = {"alpha_per_h": (math.log(2.0) / hl).astype(np.float32), "half_life_h": hl, "industry_of": industry_of,
            "n_context": np.asarray(len(names), np.int64), "in_profile": np.asarray(cfg.threshold, np.float64),
            "fusion_w": np.ones((2, g_n, 5), np.float32), "fusion_b": np.full((2, g_n), -2.0, np.float32)}  # fmt: skip
    folds = np.random.default_rng([cfg.seed, 0xF01D]).permutation(train_u)  # the fit's own halves
    half = np.isin(req.user, folds[: len(folds) // 2])
    all_c = np.arange(1, v, dtype=np.int64)
    out = []
    for fold in (half, ~half):
        fit_on, score_on = tr[~fold[tr]], tr[fold[tr]]
        part, _ = F.fit_tables(cfg, ev, idx, req, fit_on, np.unique(req.user[fit_on]), vocab, base, names)
        model = part.module()
        rows = np.asarray([i for i in score_on if len(req.targets[i])], np.int64)
        keys = ("interest", "context", "keyword", "recency", "log_weight", "tier")
        mats = {k: [] for k in keys}
        for lo in range(0, len(rows), 128):
            p = rows[lo : lo + 128]
            s = F.scenario_scores(part, model, ev, req, p, [all_c] * len(p))
            for k in keys:
                mats[k].append(s[k].reshape(len(p), v - 1))
        m = {k: np.concatenate(a).astype(np.float64) for k, a in mats.items()}
        m["prior"] = np.tile(fusion_prior(part.tables["popularity"])[1:], (len(rows), 1))
        y = np.zeros((len(rows), v - 1))
        for j, i in enumerate(rows):
            y[j, req.targets[i] - 1] = 1
        out.append((rows, m, y))
    return out, req, industry_of, g_n


def ndcg(scores: np.ndarray, rows, req, seed: int = 7, then: np.ndarray | None = None) -> float:
    rng = np.random.default_rng(seed)
    per = []
    for j, i in enumerate(rows):
        ties = rng.random((3, scores.shape[1]))
        per.append(np.mean([F.rank_metrics(scores[j], req.targets[i], t, then=then)[1] for t in ties]))
    return float(np.mean(per))


def variants(fit_half, eval_half, industry_of: np.ndarray, g_n: int) -> dict[str, np.ndarray]:
    (_, ma, ya), (_, mb, _) = fit_half, eval_half
    g = industry_of[1:]
    out = {}
    for name, cols in (("single-tier LR", ("interest", "context", "keyword", "recency")),
                       ("single-tier LR + prior", ("interest", "context", "keyword", "recency", "prior"))):  # fmt: skip
        xa, xb = np.stack([ma[k] for k in cols], -1), np.stack([mb[k] for k in cols], -1)
        W, b, _ = fit_fusion(xa.reshape(-1, len(cols)), ya.reshape(-1), np.tile(g, len(ya)), g_n)
        out[name] = (xb * W[g][None]).sum(-1) + b[g][None]
    cols = ("interest", "context", "keyword", "log_weight", "prior")
    xa, xb = np.stack([ma[k] for k in cols], -1), np.stack([mb[k] for k in cols], -1)
    W, b, _ = fit_tiered_fusion(xa.reshape(-1, 5), ya.reshape(-1), np.tile(g, len(ya)), ma["tier"].reshape(-1).astype(np.int64), g_n)
    t = mb["tier"]
    z = np.where(t > 0, (xb * W[1][g][None]).sum(-1) + b[1][g][None], (xb * W[0][g][None]).sum(-1) + b[0][g][None])
    out["two-tier LR + prior"] = (t + 1.0 / (1.0 + np.exp(-z))) / 2
    out["recency alone"] = mb["recency"]
    out["prior alone"] = mb["prior"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=f"taobao:{DEFAULT_SHARED_DATA / 'taobao_userbehavior'}")
    ap.add_argument("--seeds", default="0")
    _results.add_args(ap)
    args = ap.parse_args()
    res = {"source": args.source, "judged_on": "training users only (2-fold cross-fit)", "seeds": {}}
    for seed in (int(s) for s in args.seeds.split(",")):
        hv, req, industry_of, g_n = halves(args.source, seed)
        figs: dict[str, list[float]] = {}
        for a, b in ((0, 1), (1, 0)):
            for name, s in variants(hv[a], hv[b], industry_of, g_n).items():
                figs.setdefault(name, []).append(round(ndcg(s, hv[b][0], req), 4))
            rows, mb, _ = hv[b]
            figs.setdefault("recency, then popularity", []).append(round(ndcg(mb["recency"], rows, req, then=mb["prior"][0]), 4))
        res["seeds"][str(seed)] = figs
        if not args.json:
            print(f"seed {seed}: " + ", ".join(f"{k} {v}" for k, v in figs.items()), flush=True)
    names = list(next(iter(res["seeds"].values())))
    res["mean"] = {k: round(float(np.mean([x for f in res["seeds"].values() for x in f[k]])), 4) for k in names}
    two = [x for f in res["seeds"].values() for x in f["two-tier LR + prior"]]
    rec = [x for f in res["seeds"].values() for x in f["recency alone"]]
    res["two_tier_above_recency"] = f"{sum(a > b for a, b in zip(two, rec, strict=True))} of {len(two)}"
    _results.emit("ranking_fusion", res, args, table=table)
    if not args.json:
        print(table(res))


def table(res: dict) -> str:
    """The Markdown table docs/ranking.md includes."""
    seeds = list(res["seeds"])
    head = " | ".join(f"split {s}: half 1, half 2" for s in seeds)
    lines = [f"| training users only, NDCG@10 | {head} | mean |", "|---|" + "---|" * (len(seeds) + 1)]
    for k in res["mean"]:
        cells = " | ".join(", ".join(f"{x:.4f}" for x in res["seeds"][s][k]) for s in seeds)
        name = f"**{k}**" if k == "two-tier LR + prior" else k
        lines.append(f"| {name} | {cells} | {res['mean'][k]:.4f} |")
    src = "Taobao" if res["source"].startswith("taobao:") else f"`{res['source']}`"
    lines += ["", f"{src}; the two-tier fusion is above recency alone in {res['two_tier_above_recency']} half-evaluations."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
