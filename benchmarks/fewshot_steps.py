"""Why few-shot prompt tuning stays at zero-shot: the held-out AUC after a fixed number of tuning steps, the
demand moved toward the seeds by hand, and the step-choice rules, on the benchmark's demands and seed draws.

    python benchmarks/fewshot_steps.py --seeds 0,1,2 --bundle /tmp/fb{seed} --json
    python benchmarks/fewshot_steps.py --seeds 0,1,2 --bundle /tmp/fb{seed} --write-results   # docs/results/fewshot_steps.{json,md}

The same held-out users, demands (6 or more positives) and 5 + 5 seed draws as ``benchmarks/targeting.py``
(same split and draw seeds). Per (demand, draw):

- ``fixed_steps``: the held-out AUC of the prompt tuned on all 10 seeds for 0, 5, …, 30 steps (0 = zero-shot);
- ``toward_seeds``: the AUC of t₀ + α·(mean e⁺ − mean e⁻) for α = 0.25, 1 (the demand moved toward the seeds'
  direction by hand), and of that direction alone (``seeds_only``);
- ``rules``: the held-out AUC of the step count each rule picks from the leave-one-out ranks over the seeds
  (``best_mean``: the best mean rank, fewest steps on a tie; ``one_se``: the fewest steps within one standard
  error of the best, moving only when the best beats 0 by more than one; ``t_test``: the best, if a one-sided
  paired t-test over the left-out seeds gives p < 0.05; ``t_test_bonferroni``: the same with p multiplied by
  the step counts compared, the rule ``training/targeting.py`` uses), the share of tunings that move, and
  the (split, demand) cells where it is better / worse than zero-shot. Each row of the JSON keeps the step
  count every rule picked (``steps``), not the leave-one-out ranks themselves.

The bundles must exist (train them with ``benchmarks/targeting.py --bundle``). Skips when the Taobao sample is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _results  # noqa: E402
from targeting import HORIZON_H, TAOBAO  # noqa: E402

ALPHAS = (0.25, 1.0)


def run_split(bundle_dir: str, seed: int, draws: int, data: str) -> list[dict]:
    import torch
    from collections import Counter

    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import split_users
    from edgeintent.toolkit.features.text import WindowIndex, sentence, table_for
    from edgeintent.toolkit.models.exportable import predict_embeddings
    from edgeintent.toolkit.training import targeting as TG
    from edgeintent.toolkit.training.metrics import auc

    torch.set_num_threads(1)
    ds = load_source(f"taobao:{data}")
    train_users, test_users = split_users(ds.events.users(), 0.4, seed)
    bundle = load_bundle(bundle_dir)
    model = load_model(bundle)
    table = table_for(model.streams)
    T = int(ds.events.time_span()[1]) - HORIZON_H * 3_600_000
    ix = WindowIndex(table, ds.events)

    def population(users):
        s, _ = TG.user_samples(ds.events.filter_users(users), bundle.spec, model.streams, T)
        u = s.user_id
        return s, ix.clauses(u, np.full(len(u), T), np.full(len(u), T + HORIZON_H * 3_600_000))

    te_s, te_f = population(test_users)
    _, tr_f = population(train_users)
    emb = predict_embeddings(model, te_s)["embedding"]
    freq = Counter(c for f in tr_f for c in set(f))
    words = set(model.vocab)
    demands = []  # as benchmarks/targeting.py
    for name, n in {"buy": 8, "cart": 8, "browse": 8, "fav": 4, "buy_any": 1, "cart_many": 1}.items():
        demands += [c for c, _ in freq.most_common() if c[0] == name and (c[1] is None or c[1] in words)][:n]
    rng = np.random.default_rng(seed)
    out = []
    width = model.hparams["text_width"]
    for clause in demands:
        y = np.array([clause in f for f in te_f], np.int8)
        if y.sum() < 3 or y.sum() > len(y) - 3:
            continue
        pos_all, neg_all = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        if len(pos_all) < 6:
            continue
        text = sentence(table, [clause])
        ids, mask = model.token_ids([text])
        for d in range(draws):
            pos, neg = rng.choice(pos_all, 5, replace=False), rng.choice(neg_all, 5, replace=False)
            rest = np.setdiff1d(np.arange(len(y)), np.concatenate([pos, neg]))
            for p in model.parameters():
                p.requires_grad_(False)
            ep, en = torch.from_numpy(emb[pos]).float(), torch.from_numpy(emb[neg]).float()
            with torch.no_grad():
                t0 = model.text(ids, mask)[0]
                base = model.text(ids, mask, torch.zeros(TG.PROMPT_TOKENS, width))[0]
            args = (TG.PROMPT_TOKENS, TG.STEPS, 0.02, TG.MARGIN, TG.ANCHOR, TG.DECAY)
            curve: dict[int, list[float]] = {}
            allemb, is_pos = torch.cat([ep, en]), torch.arange(10) < 5
            for i in range(10):  # the leave-one-out of training/targeting.loo_steps, per seed
                keep = torch.arange(10) != i
                p_in, n_in = allemb[keep & is_pos], allemb[keep & ~is_pos]
                other = n_in if is_pos[i] else p_in

                def check(step, t, i=i, other=other):
                    s, so = float(allemb[i] @ t), other @ t
                    r = float((so < s).float().mean() + 0.5 * (so == s).float().mean())
                    curve.setdefault(step, []).append(r if is_pos[i] else 1 - r)

                TG._tune(model, ids, mask, t0, base, p_in, n_in, *args, check)
            held: dict[int, float] = {}
            TG._tune(model, ids, mask, t0, base, ep, en, *args,
                     lambda step, t: held.__setitem__(step, auc(y[rest], emb[rest] @ t.numpy())))  # fmt: skip
            for p in model.parameters():
                p.requires_grad_(True)
            t0n, direction = t0.numpy(), emb[pos].mean(0) - emb[neg].mean(0)
            toward = {str(a): auc(y[rest], emb[rest] @ (t0n + a * direction)) for a in ALPHAS}
            out.append({"split": seed, "demand": text, "draw": d, "positives": int(y.sum()), "held": held,
                        "toward_seeds": toward, "seeds_only": auc(y[rest], emb[rest] @ direction),
                        "loo": {k: v for k, v in curve.items()}})  # fmt: skip
    return out


def _rules():
    from scipy.stats import ttest_rel

    def best(c):
        m = {k: np.mean(v) for k, v in c.items()}
        top = max(m.values())
        return min(k for k, v in m.items() if v >= top - 1e-9), m

    def best_mean(c):
        return best(c)[0]

    def one_se(c):
        k, m = best(c)
        if k == 0:
            return 0
        for j in sorted(m):
            d = np.array(c[k]) - np.array(c[j])
            se = d.std(ddof=1) / np.sqrt(len(d))
            if m[k] - m[j] <= se:
                return j
        return k

    def t_test(c, factor=1):
        k, m = best(c)
        if k == 0:
            return 0
        d = np.array(c[k]) - np.array(c[0])
        if np.allclose(d, d[0]):
            return k if d[0] > 0 else 0
        return k if ttest_rel(c[k], c[0], alternative="greater").pvalue * factor < 0.05 else 0

    return {"best_mean": best_mean, "one_se": one_se, "t_test": t_test,
            "t_test_bonferroni": lambda c: t_test(c, len(c) - 1)}  # fmt: skip


def summarise(rows: list[dict]) -> dict:
    steps = sorted(int(k) for k in rows[0]["held"])
    zs = np.array([r["held"][0] for r in rows])
    res = {"tunings": len(rows), "cells": len({(r["split"], r["demand"]) for r in rows}),
           "fixed_steps": {s: float(np.mean([r["held"][s] for r in rows])) for s in steps},
           "toward_seeds": {a: float(np.mean([r["toward_seeds"][a] for r in rows])) for a in rows[0]["toward_seeds"]},
           "seeds_only": float(np.mean([r["seeds_only"] for r in rows])), "rules": {}}  # fmt: skip
    for name, rule in _rules().items():
        pick = [rule({int(k): v for k, v in r["loo"].items()}) for r in rows]
        fs = np.array([r["held"][k] for r, k in zip(rows, pick)])
        cells: dict = {}
        for r, f, z in zip(rows, fs, zs):
            cells.setdefault((r["split"], r["demand"]), []).append(f - z)
        diffs = [np.mean(v) for v in cells.values()]
        res["rules"][name] = {"auc": float(fs.mean()), "zero_shot": float(zs.mean()), "moved": float(np.mean(np.array(pick) > 0)),
                              "better": int(sum(x > 1e-9 for x in diffs)), "worse": int(sum(x < -1e-9 for x in diffs))}  # fmt: skip
    return res


def table(r: dict) -> str:
    s = r["summary"]
    out = [f"{s['tunings']} tunings ({s['cells']} split × demand cells, 5 + 5 seeds each), held-out AUC means.", "",
           "| tuned on all 10 seeds for | " + " | ".join(f"{k} steps" for k in s["fixed_steps"]) + " |",
           "|---|" + "---|" * len(s["fixed_steps"]),
           "| held-out AUC | " + " | ".join(f"{v:.4f}" for v in s["fixed_steps"].values()) + " |", "",
           "| demand moved toward the seeds | " + " | ".join(f"α = {a}" for a in s["toward_seeds"]) + " | the seeds' direction alone |",
           "|---|" + "---|" * (len(s["toward_seeds"]) + 1),
           "| held-out AUC | " + " | ".join(f"{v:.4f}" for v in s["toward_seeds"].values()) + f" | {s['seeds_only']:.4f} |", "",
           "| step rule (leave-one-out over the seeds) | few-shot AUC | zero-shot AUC | tunings that move | cells better / worse |",
           "|---|---|---|---|---|"]  # fmt: skip
    for name, v in s["rules"].items():
        out.append(f"| {name} | {v['auc']:.4f} | {v['zero_shot']:.4f} | {100 * v['moved']:.0f} % | {v['better']} / {v['worse']} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(TAOBAO))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--bundle", required=True, help="trained find bundle per split ({seed} is replaced)")
    ap.add_argument("--name", default="fewshot_steps")
    _results.add_args(ap)
    args = ap.parse_args()
    if not Path(args.data).exists():
        print(json.dumps({"skipped": f"Taobao sample not found at {args.data}"}))
        return
    rows = []
    for seed in (int(x) for x in args.seeds.split(",")):
        rows += run_split(args.bundle.replace("{seed}", str(seed)), seed, args.draws, args.data)
    rules = _rules()
    slim = [{k: v for k, v in r.items() if k != "loo"}  # the leave-one-out ranks stay out of the file (its size)
            | {"held": {k: round(v, 4) for k, v in r["held"].items()},
               "steps": {n: rule({int(k): v for k, v in r["loo"].items()}) for n, rule in rules.items()}}
            for r in rows]  # fmt: skip
    result = {"summary": summarise(rows), "rows": slim}
    _results.emit(args.name, result, args, table=table)
    if not args.json:
        print(table(result))


if __name__ == "__main__":
    main()
