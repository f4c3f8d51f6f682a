"""Few-shot targeting: which rule moves the demand away from zero-shot, and where the seeds carry information.

    python benchmarks/fewshot_steps.py --seeds 0,1,2 --bundle /tmp/fb{seed} --json
    python benchmarks/fewshot_steps.py --seeds 0,1,2 --bundle /tmp/fb{seed} --write-results   # docs/results/fewshot_steps.{json,md}

The same held-out users, demands (6 or more positives) and 5 + 5 seed draws as ``benchmarks/targeting.py``
(same split and draw seeds). Three kinds of tuning, each scored on the held-out users minus the 10 seeds:

- ``demand``: the demand is the truth (the benchmark's demands);
- ``vague``: the demand written is vaguer than the truth (*mis-specified*): the truth "add to cart in
  category C" written "browse category C", the truth "browse category C" written "buy anything", the truth
  "buy anything" written "add at least 3 items to the cart"; the seeds are drawn from the truth. Beside it:
  zero-shot with the true demand (what a precise sentence would give) and U-MLP on the same seeds;
- ``null``: the benchmark's demands with seeds whose labels are drawn at random (5 + 5 held-out users
  regardless of the truth). The seeds carry no information, so a rule should move at most ``ALPHA`` of
  the time. This is how the rule is chosen: without looking at a held-out AUC.

Per tuning it records the held-out AUC of every candidate (``held``: the prompt tuned on all 10 seeds for
0, 5, …, 30 steps, ``steps=0`` being zero-shot; the demand moved toward the seeds, ``toward=A``), the seeds'
direction alone, U-MLP, how far the 30-step prompt turned the demand (cos(t, t₀)), and the candidate each
rule picks from the leave-one-out ranks over the seeds (``training/targeting.loo_curve``). The rules, each on
the prompt's step counts alone (``prompt``) and on the step counts and the moves (``prompt+toward``):
``best_mean`` (the best mean rank, no test), ``t_bonferroni`` (a one-sided paired t-test of the best against
zero-shot, p times the candidates compared), ``wilcoxon_bonferroni`` (the same with the signed-rank test) and
``signflip`` (the max-T sign-flip permutation test, exact over the 2¹⁰ flips; ``training/targeting.choose``)
at p < 0.05 and ``signflip_0.01`` at p < 0.01; and each also on the moves alone (``toward``).

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

ALPHA = 0.05
#: the rule training/targeting.py uses (its default: the prompt's step counts, the sign-flip test)
DEFAULT_RULE = "signflip (prompt)"
KINDS = ("demand", "vague", "null")


def run_split(bundle_dir: str, seed: int, draws: int, data: str, vague_draws: int, null_draws: int) -> list[dict]:
    import torch
    from collections import Counter

    from sklearn.neural_network import MLPClassifier

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

    def top(name, n):
        return [c for c, _ in freq.most_common() if c[0] == name and (c[1] is None or c[1] in words)][:n]

    demands = []  # as benchmarks/targeting.py
    for name, n in {"buy": 8, "cart": 8, "browse": 8, "fav": 4, "buy_any": 1, "cart_many": 1}.items():
        demands += top(name, n)
    vague = ([(c, ("browse", c[1])) for c in top("cart", 8)] + [(c, ("buy_any", None)) for c in top("browse", 8)]
             + [(("buy_any", None), ("cart_many", None))])  # fmt: skip
    width = model.hparams["text_width"]
    for p in model.parameters():
        p.requires_grad_(False)
    args = (TG.PROMPT_TOKENS, TG.STEPS, 0.02, TG.MARGIN, TG.ANCHOR, TG.DECAY)
    out = []

    def tune(kind, truth, written, y, pos, neg, d):
        text = sentence(table, [written])
        ids, mask = model.token_ids([text])
        rest = np.setdiff1d(np.arange(len(y)), np.concatenate([pos, neg]))
        ep, en = torch.from_numpy(emb[pos]).float(), torch.from_numpy(emb[neg]).float()
        with torch.no_grad():
            t0 = model.text(ids, mask)[0]
            base = model.text(ids, mask, torch.zeros(TG.PROMPT_TOKENS, width))[0]
        curve = TG.loo_curve(model, ids, mask, t0, base, ep, en, *args, toward=TG.MOVES, ref=TG.reference(emb, pos, neg))
        held, moved = {}, {}

        def check(step, t):
            held[f"steps={step}"] = auc(y[rest], emb[rest] @ t.numpy())
            moved["cos"] = float(t @ t0)

        TG._tune(model, ids, mask, t0, base, ep, en, *args, check)
        for a in TG.MOVES:
            held[f"toward={a:g}"] = auc(y[rest], emb[rest] @ TG._toward(t0, ep, en, a).numpy())
        clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, random_state=seed + d)
        clf.fit(emb[np.concatenate([pos, neg])], np.r_[np.ones(len(pos)), np.zeros(len(neg))])
        row = {"kind": kind, "split": seed, "demand": text, "truth": sentence(table, [truth]), "draw": d,
               "positives": int(y.sum()), "held": held, "cos_30_steps": moved["cos"],
               "seeds_only": auc(y[rest], emb[rest] @ (emb[pos].mean(0) - emb[neg].mean(0))),
               "u_mlp": auc(y[rest], clf.predict_proba(emb[rest])[:, 1]), "loo": curve}  # fmt: skip
        if kind == "vague":
            tt = model.encode_texts([sentence(table, [truth])])[0].numpy()
            row["true_demand"] = auc(y[rest], emb[rest] @ tt)
        out.append(row)

    rng = np.random.default_rng(seed)  # the benchmark's draws first, so they are its seeds
    nrng, vrng = np.random.default_rng(seed + 1000), np.random.default_rng(seed + 2000)
    for clause in demands:
        y = np.array([clause in f for f in te_f], np.int8)
        if y.sum() < 3 or y.sum() > len(y) - 3:
            continue
        pos_all, neg_all = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        if len(pos_all) < 6:
            continue
        for d in range(draws):
            pos, neg = rng.choice(pos_all, 5, replace=False), rng.choice(neg_all, 5, replace=False)
            tune("demand", clause, clause, y, pos, neg, d)
        for d in range(null_draws):
            seeds = nrng.choice(len(y), 10, replace=False)
            tune("null", clause, clause, y, seeds[:5], seeds[5:], d)
    for truth, written in vague:
        y = np.array([truth in f for f in te_f], np.int8)
        pos_all, neg_all = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        if len(pos_all) < 6 or len(neg_all) < 6 or written[1] not in words | {None}:
            continue
        for d in range(vague_draws):
            tune("vague", truth, written, y, vrng.choice(pos_all, 5, replace=False), vrng.choice(neg_all, 5, replace=False), d)
    for p in model.parameters():
        p.requires_grad_(True)
    return out


def _rules() -> dict:
    """name → rule(curve) → the candidate key; ``curve`` maps candidate keys to leave-one-out ranks."""
    from scipy.stats import ttest_rel, wilcoxon

    from edgeintent.toolkit.training.targeting import START, choose

    def best(c):
        m = {k: float(np.mean(v)) for k, v in c.items()}
        top = max(m.values())
        return next(k for k, v in m.items() if v >= top - 1e-9)

    def tested(p_of):
        def rule(c):
            k = best(c)
            if k == START:
                return START
            d = np.array(c[k]) - np.array(c[START])
            if np.allclose(d, 0):
                return START
            if np.allclose(d, d[0]):
                return k  # every seed gains the same
            return k if p_of(c[k], c[START], d) * (len(c) - 1) < ALPHA else START

        return rule

    def t_p(a, b, d):
        return ttest_rel(a, b, alternative="greater").pvalue

    def w_p(a, b, d):
        return wilcoxon(d[np.abs(d) > 1e-12], alternative="greater").pvalue

    base = {"best_mean": best, "t_bonferroni": tested(t_p), "wilcoxon_bonferroni": tested(w_p), "signflip": choose,
            "signflip_0.01": lambda c: choose(c, alpha=0.01)}  # fmt: skip
    fams = {"prompt": lambda c: {k: v for k, v in c.items() if k.startswith("steps=")},
            "toward": lambda c: {k: v for k, v in c.items() if k == START or k.startswith("toward=")}, "prompt+toward": lambda c: c}  # fmt: skip
    return {f"{name} ({fam})": (lambda c, r=rule, f=sub: r(f(c))) for fam, sub in fams.items() for name, rule in base.items()}


def summarise(rows: list[dict]) -> dict:
    res = {}
    rules = _rules()
    for kind in KINDS:
        rs = [r for r in rows if r["kind"] == kind]
        if not rs:
            continue
        zs = np.array([r["held"]["steps=0"] for r in rs])
        k = {"tunings": len(rs), "cells": len({(r["split"], r["demand"], r["truth"]) for r in rs}),
             "candidates": {c: float(np.mean([r["held"][c] for r in rs])) for c in rs[0]["held"]},
             "seeds_only": float(np.mean([r["seeds_only"] for r in rs])), "u_mlp": float(np.mean([r["u_mlp"] for r in rs])),
             "cos_30_steps": float(np.mean([r["cos_30_steps"] for r in rs])), "rules": {}}  # fmt: skip
        if kind == "vague":
            k["true_demand"] = float(np.mean([r["true_demand"] for r in rs]))
            k["by_pair"] = {}
            for r in rs:
                pair = (r["demand"].split("will ", 1)[1].split(" category")[0], r["truth"].split("will ", 1)[1].split(" category")[0])
                k["by_pair"].setdefault(" ← ".join(pair[::-1]), []).append(r)
            k["by_pair"] = {p: {"tunings": len(v), **{m: float(np.mean([x["held"]["steps=0"] if m == "zero_shot" else x[m] for x in v]))
                                                     for m in ("zero_shot", "true_demand", "u_mlp", "seeds_only")},
                                **{c: float(np.mean([x["held"][c] for x in v])) for c in ("toward=1", "toward=2")}}
                            for p, v in k["by_pair"].items()}  # fmt: skip
        for name, rule in rules.items():
            pick = [r.get("picks", {}).get(name) or rule(r["loo"]) for r in rs]
            fs = np.array([r["held"][p] for r, p in zip(rs, pick)])
            cells: dict = {}
            for r, f, z in zip(rs, fs, zs):
                cells.setdefault((r["split"], r["demand"], r["truth"]), []).append(f - z)
            diffs = [np.mean(v) for v in cells.values()]
            better, worse = int(sum(x > 1e-9 for x in diffs)), int(sum(x < -1e-9 for x in diffs))
            k["rules"][name] = {"auc": float(fs.mean()), "zero_shot": float(zs.mean()), "moved": float(np.mean([p != "steps=0" for p in pick])),
                                "better": better, "worse": worse, "tied": len(diffs) - better - worse}  # fmt: skip
        res[kind] = k
    return res


TITLES = {"demand": "the demand is the truth", "vague": "a vaguer demand than the truth (seeds from the truth)",
          "null": "seeds with random labels (no information)"}  # fmt: skip


def table(r: dict) -> str:
    s = r["summary"]
    out = ["Held-out AUC means over the tunings (5 + 5 seeds each; cells = split × demand).", ""]
    out += ["| step rule (leave-one-out over the seeds) | " + " | ".join(
        f"{TITLES[k]}: few-shot / zero-shot, moves, cells better / tied / worse" for k in s) + " |",
        "|---|" + "---|" * len(s)]  # fmt: skip
    for name in next(iter(s.values()))["rules"]:
        cells = []
        for k in s.values():
            v = k["rules"][name]
            cells.append(f"{v['auc']:.4f} / {v['zero_shot']:.4f}, {100 * v['moved']:.0f} %, {v['better']} / {v['tied']} / {v['worse']}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", "| fixed candidate, on all 10 seeds | " + " | ".join(f"{TITLES[k]} ({v['tunings']} tunings)" for k, v in s.items()) + " |",
            "|---|" + "---|" * len(s)]  # fmt: skip
    for c in next(iter(s.values()))["candidates"]:
        label = "zero-shot (steps=0)" if c == "steps=0" else c
        out.append(f"| {label} | " + " | ".join(f"{k['candidates'][c]:.4f}" for k in s.values()) + " |")
    for m, label in (("seeds_only", "the seeds' direction alone"), ("u_mlp", "U-MLP (same seeds)"),
                     ("cos_30_steps", "cos(t, t₀) after 30 prompt steps")):  # fmt: skip
        out.append(f"| {label} | " + " | ".join(f"{k[m]:.4f}" for k in s.values()) + " |")
    if "vague" in s:
        v = s["vague"]
        out += ["", f"Vague demands by kind (zero-shot with the true demand over all of them: {v['true_demand']:.4f}):", "",
                "| truth ← demand written | tunings | zero-shot (written) | zero-shot (true demand) | toward=1 | toward=2 | seeds alone | U-MLP |",
                "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for p, x in v["by_pair"].items():
            out.append(f"| {p} | {x['tunings']} | {x['zero_shot']:.4f} | {x['true_demand']:.4f} | {x['toward=1']:.4f} | "
                       f"{x['toward=2']:.4f} | {x['seeds_only']:.4f} | {x['u_mlp']:.4f} |")  # fmt: skip
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(TAOBAO))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--vague-draws", type=int, default=3)
    ap.add_argument("--null-draws", type=int, default=3)
    ap.add_argument("--bundle", required=True, help="trained find bundle per split ({seed} is replaced)")
    ap.add_argument("--name", default="fewshot_steps")
    _results.add_args(ap)
    args = ap.parse_args()
    if not Path(args.data).exists():
        print(json.dumps({"skipped": f"Taobao sample not found at {args.data}"}))
        return
    rows = []
    for seed in (int(x) for x in args.seeds.split(",")):
        rows += run_split(args.bundle.replace("{seed}", str(seed)), seed, args.draws, args.data, args.vague_draws, args.null_draws)
    rules = _rules()
    for r in rows:
        r["picks"] = {n: rule(r["loo"]) for n, rule in rules.items()}
    # the file keeps per tuning the held-out AUCs and the default rule's choice; the leave-one-out ranks and the
    # other rules' choices stay out of it (its size), the summary has every rule
    slim = [{k: v for k, v in r.items() if k not in ("loo", "picks")}
            | {"held": {k: round(v, 4) for k, v in r["held"].items()}, "choice": r["picks"][DEFAULT_RULE]} for r in rows]  # fmt: skip
    result = {"summary": summarise(rows), "rows": slim}
    _results.emit(args.name, result, args, table=table)
    if not args.json:
        print(table(result))


if __name__ == "__main__":
    main()
