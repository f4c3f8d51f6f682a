"""Fit the scenario scorers on a data source, score requests, judge on held-out users, and the rank bundle.

A rank bundle is a directory like the model bundles (``toolkit/bundle.py``'s writers and manifest
format, sha256 of every file, refused when a byte changed), without a feature spec:

::

    config.json           RankConfig, vocabulary (raw category ids), industries, tag itemsets, context names
    weights.safetensors   the tables: interest, keyword, stumps, fusion, half-lives, popularity
    golden.npz            the profile's golden trace (events → states) and the device golden cases
    metrics.json          held-out recall@10 / NDCG@10 of every scorer, the fusion and popularity
    exports/<target>/…    exported scorers (``edgeintent rank export``)
    manifest.json
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeintent.errors import BundleError, DataError
from edgeintent.io import canonical_json
from edgeintent.rank import RankConfig
from edgeintent.rank import data as D
from edgeintent.rank.profile import ACTION_WEIGHT, ACTIONS, HOUR_MS, DecayRule, golden_trace
from edgeintent.rank.scorers import (DEFAULT_COEF, DEFAULT_INTERCEPT, Stumps, fit_tiered_fusion, gentle_adaboost,
                                     keyword_table, mine_interest)  # fmt: skip
from edgeintent.toolkit.bundle import BundleKind, add_files, golden_bytes, verify_files, weights_bytes, write_files

RANK_FORMAT = "edgeintent-rank-bundle"
SCORES = ("interest", "context", "keyword", "recency", "fusion", "popularity")
K_TOP = 10
TIE_DRAWS = 10  # random orders of tied candidates averaged per request (evaluate)


@dataclass
class Ranker:
    """A fitted ranker: config, vocabulary, itemset ids, context names and the tables of :class:`RankScorer`."""

    config: RankConfig
    vocab: np.ndarray  # raw category ids, index 0 = other
    itemsets: dict[tuple[str, ...], int]  # tag itemset → interest table row (1..)
    context_names: list[str]
    tables: dict[str, np.ndarray]
    info: dict  # industries: how fused, dropped, training errors

    def rule(self) -> DecayRule:
        return DecayRule.from_half_lives(self.tables["half_life_h"], self.config.threshold, self.config.capacity)

    def module(self):
        from edgeintent.rank.device import RankScorer

        return RankScorer(self.tables)

    def tagset_ids(self, tags: tuple[str, ...]) -> np.ndarray:
        ids = sorted({self.itemsets[s] for s in D.tag_itemsets(tags) if s in self.itemsets})[: self.config.max_sets]
        out = np.zeros(self.config.max_sets, np.int64)
        out[: len(ids)] = ids
        return out


def half_lives(cfg: RankConfig, vocab: np.ndarray) -> np.ndarray:
    hl = np.full(len(vocab), float(cfg.half_life_h), np.float64)
    for raw, hours in cfg.half_life_overrides.items():
        hit = np.flatnonzero(vocab == int(raw))
        if len(hit) and hit[0] > 0:
            hl[hit[0]] = float(hours)
    return hl


def feeds_for(ranker: Ranker, ev: D.Events, req: D.Requests, rows: np.ndarray, cands: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Exported-signature feeds for requests ``rows`` with candidate lists ``cands`` (one per request)."""
    k = ranker.config.capacity
    t = req.t_ms[rows]
    age = (t[:, None] - req.prof_t[rows]) / HOUR_MS
    age = np.where(req.prof_key[rows] > 0, age, 0.0)
    return {
        "cand": np.concatenate(cands).astype(np.int64) if cands else np.zeros(0, np.int64),
        "row_user": np.repeat(np.arange(len(rows)), [len(c) for c in cands]).astype(np.int64),
        "tagsets": np.stack([ranker.tagset_ids(req.tags[i]) for i in rows]) if len(rows) else np.zeros((0, ranker.config.max_sets), np.int64),
        "prof_key": req.prof_key[rows].reshape(-1, k),
        "prof_w": req.prof_w[rows].astype(np.float32).reshape(-1, k),
        "prof_age_h": age.astype(np.float32).reshape(-1, k),
        "context": D.context_features(ev, req.user[rows], t).reshape(len(rows), -1),
    }  # fmt: skip


def scenario_scores(ranker: Ranker, model, ev, req, rows, cands) -> dict[str, np.ndarray]:
    from edgeintent.rank.device import run_torch

    out = run_torch(model, feeds_for(ranker, ev, req, rows, cands))
    out["fusion"] = out["rank"]
    return out


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------


def fit_ranker(dataset, cfg: RankConfig = RankConfig(), say=None) -> tuple[Ranker, dict, dict]:
    """Fit on the training users; returns ``(ranker, held-out metrics, golden arrays)``."""
    say = say or (lambda *_: None)
    ev = D.events_of(dataset)
    train_u, test_u = D.split_users(ev.user, cfg.test_share, cfg.seed)
    if len(train_u) < 2:
        raise DataError(f"{dataset.name}: the rank stage needs at least 2 users with cloud events to fit on")
    vocab = D.make_vocab(ev, train_u, cfg.vocab)
    v = len(vocab)
    idx = D.index_of(vocab, ev.cat)
    top_level = (ev.context_table or {}).get("industry_of")
    if top_level is not None:  # the source knows its catalogue's top-level groups (simctx:)
        industry_of = np.concatenate([[0], np.asarray(top_level(vocab[1:]), np.int64)]).astype(np.int64)
        industry_of = np.unique(industry_of, return_inverse=True)[1].astype(np.int64)  # groups numbered 0..G-1
        method = "source"
    else:
        industry_of = D.derive_industries(ev, train_u, idx, v, cfg.industries, cfg.seed)
        method = "k-means of co-engagement"
    g_n = int(industry_of.max()) + 1
    hl = half_lives(cfg, vocab)
    rule = DecayRule.from_half_lives(hl, cfg.threshold, cfg.capacity)
    say(f"rank: {len(ev):,} events, {len(train_u)} training users, {len(test_u)} held out, {v - 1} categories, {g_n} industries")

    req = D.build_requests(ev, idx, np.unique(ev.user), rule)
    is_train = np.isin(req.user, train_u)
    tr = np.flatnonzero(is_train)
    if len(tr) == 0:
        raise DataError(f"{dataset.name}: no training user has events on two different days; nothing to fit the ranker on")

    names = D.context_names(ev)
    base = {"alpha_per_h": (math.log(2.0) / hl).astype(np.float32), "half_life_h": hl, "industry_of": industry_of,
            "n_context": np.asarray(len(names), np.int64), "in_profile": np.asarray(cfg.threshold, np.float64),
            "fusion_w": np.tile(np.asarray(DEFAULT_COEF, np.float32), (2, g_n, 1)),
            "fusion_b": np.full((2, g_n), DEFAULT_INTERCEPT, np.float32)}  # fmt: skip

    # the scorers' tables on every training user
    ranker, info = fit_tables(cfg, ev, idx, req, tr, train_u, vocab, base, names)
    say(f"rank: interest — {info['transactions']:,} transactions, {info['itemsets']:,} tag itemsets with a lift > 1")
    say(f"rank: context — {g_n - len(info['context_dropped'])} of {g_n} industries kept (balanced training error ≤ {cfg.drop_error})")

    # fusion: per-industry logistic regression over the four scenario scores, fitted on out-of-fold
    # scores (2-fold cross-fitting over the training users): scored by tables fitted on the users they
    # were fitted on, keyword and interest look better than they are on new users
    folds = np.random.default_rng([cfg.seed, 0xF01D]).permutation(train_u)
    half = np.isin(req.user, folds[: len(folds) // 2])
    xs = []
    for fold in (half, ~half):
        fit_on, score_on = tr[~fold[tr]], tr[fold[tr]]
        fit_users = np.unique(req.user[fit_on])
        if len(fit_on) == 0 or len(score_on) == 0:
            continue
        part, _ = fit_tables(cfg, ev, idx, req, fit_on, fit_users, vocab, base, names)
        xs.append(fusion_rows(part, ev, req, score_on, v, industry_of))
    if xs:
        x, y, g, tier = (np.concatenate(a) for a in zip(*xs, strict=True))
        W, b, how = fit_tiered_fusion(x, y, g, tier, g_n)
        ranker.tables["fusion_w"], ranker.tables["fusion_b"] = W.astype(np.float32), b.astype(np.float32)
    else:
        how = {"in_profile": ["default"] * g_n, "outside": ["default"] * g_n}
    ranker.info = {"industries": g_n, "industry_method": method, "fusion": how, **info, "train_users": len(train_u), "test_users": len(test_u)}
    say("rank: fusion — " + ", ".join(f"{t}: {h.count('fitted')} of {g_n} industries fitted" for t, h in how.items()))

    test_rows = np.flatnonzero(~is_train)
    metrics = evaluate(ranker, ev, req, test_rows)
    metrics["info"] = ranker.info
    golden = make_golden(ranker, ev, idx, req, test_rows if len(test_rows) else tr)
    return ranker, metrics, golden


def fit_tables(cfg: RankConfig, ev, idx, req, rows: np.ndarray, users: np.ndarray, vocab: np.ndarray, base: dict,
               names: list[str]) -> tuple[Ranker, dict]:  # fmt: skip
    """Interest, keyword and context tables fitted on requests ``rows`` and the events of ``users``."""
    v = len(vocab)
    industry_of = base["industry_of"]
    g_n = int(industry_of.max()) + 1
    # popularity: the users' engagements per category (the baseline, and the fusion's prior)
    pop = np.zeros(v, np.float64)
    sel = np.isin(ev.user, users) & np.isin(ev.action, D.ENGAGE)
    np.add.at(pop, idx[sel], 1.0)
    pop[0] = 0.0
    # interest: FP-growth over (tags, category) transactions; a conversion counts as conv_weight clicks
    trans = []
    for i in rows:
        for c in req.clicks[i]:
            trans.append((req.tags[i], str(int(c)), 1))
        for c in req.targets[i]:
            trans.append((req.tags[i], str(int(c)), cfg.conv_weight))
    mined = mine_interest(trans, cfg.min_count, max_tags=2)
    sets = sorted({s for s, _ in mined})
    itemsets = {s: i + 1 for i, s in enumerate(sets)}
    interest = np.zeros((len(sets) + 1, v), np.float32)
    for (s, c), score in mined.items():
        interest[itemsets[s], int(c)] = score

    # keyword: TF-IDF of the categories engaged after each profile term
    docs: dict[tuple[int, int], int] = {}
    for i in rows:
        keys = req.prof_key[i][req.prof_key[i] > 0]
        for c in req.targets[i]:
            for k in keys:
                docs[(int(k), int(c))] = docs.get((int(k), int(c)), 0) + 1
    doc_terms = np.asarray([(k, c, n) for (k, c), n in sorted(docs.items())], np.int64).reshape(-1, 3)
    keyword = keyword_table(doc_terms, v)

    # context: Gentle AdaBoost per industry on the users' events (engaged vs viewed)
    ev_rows = np.flatnonzero(np.isin(ev.user, users) & (idx > 0))
    x_all = D.context_features(ev, ev.user[ev_rows], ev.ts[ev_rows])
    y_all = np.isin(ev.action[ev_rows], D.ENGAGE)
    g_ev = industry_of[idx[ev_rows]]
    rng = np.random.default_rng([cfg.seed, 0xC0])
    stumps: dict[int, Stumps] = {}
    dropped, errors = [], []
    for g in range(g_n):
        sel = np.flatnonzero(g_ev == g)
        if len(sel) > cfg.context_rows:
            sel = np.sort(rng.choice(sel, cfg.context_rows, replace=False))
        st = gentle_adaboost(x_all[sel], y_all[sel], cfg.rounds)
        errors.append(round(st.train_error, 6))
        if len(st) == 0 or st.train_error > cfg.drop_error:
            dropped.append(g)
        else:
            stumps[g] = st
    r_n = max([len(s) for s in stumps.values()], default=1)
    feat = np.zeros((g_n, r_n), np.int64)
    thr, left, right = (np.zeros((g_n, r_n), np.float32) for _ in range(3))
    for g, st in stumps.items():
        n = len(st)
        feat[g, :n], thr[g, :n], left[g, :n], right[g, :n] = st.feat, st.thr, st.left, st.right
    tables = {**base, "popularity": pop, "interest": interest, "keyword": keyword, "stump_feat": feat, "stump_thr": thr,
              "stump_left": left, "stump_right": right}  # fmt: skip
    tables = {k: (v_.copy() if isinstance(v_, np.ndarray) else v_) for k, v_ in tables.items()}
    info = {"itemsets": len(sets), "transactions": len(trans), "context_dropped": dropped, "context_train_error": errors}
    return Ranker(cfg, vocab, itemsets, names, tables, {}), info


def fusion_rows(ranker: Ranker, ev, req, rows: np.ndarray, v: int, industry_of: np.ndarray):
    """(fusion inputs (n, 5), labels, industries, tiers) of requests ``rows`` against candidates: every
    category (cfg.negatives = 0, the candidate set ranking faces) or the targets and sampled negatives."""
    from edgeintent.rank.device import FUSION_INPUTS, fusion_prior

    cfg = ranker.config
    model = ranker.module()
    prior = fusion_prior(ranker.tables["popularity"])
    rng = np.random.default_rng([cfg.seed, 0xF0])
    fit_rows = [i for i in rows if len(req.targets[i])]
    xs, ys, gs, ts = [], [], [], []
    for lo in range(0, len(fit_rows), 256):
        part = np.asarray(fit_rows[lo : lo + 256])
        cands, labels = [], []
        for i in part:
            pos = req.targets[i]
            if cfg.negatives <= 0 or cfg.negatives >= v - 1:
                neg = np.arange(1, v, dtype=np.int64)
            else:
                neg = rng.integers(1, v, size=cfg.negatives)
            neg = neg[~np.isin(neg, pos)]
            cands.append(np.concatenate([pos, neg]).astype(np.int64))
            labels.append(np.r_[np.ones(len(pos)), np.zeros(len(neg))])
        s = scenario_scores(ranker, model, ev, req, part, cands)
        c = np.concatenate(cands)
        s["prior"] = prior[c]
        xs.append(np.stack([s[k] for k in FUSION_INPUTS], 1))
        ys.append(np.concatenate(labels))
        gs.append(industry_of[c])
        ts.append(s["tier"].astype(np.int64))
    if not xs:
        return np.zeros((0, 5)), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(gs), np.concatenate(ts)


# ---------------------------------------------------------------------------------------------
# Held-out evaluation
# ---------------------------------------------------------------------------------------------


def rank_metrics(scores: np.ndarray, targets: np.ndarray, tie: np.ndarray | None = None, k: int = K_TOP,
                 then: np.ndarray | None = None) -> tuple[float, float]:  # fmt: skip
    """(recall@k, NDCG@k) of one request: ``scores`` over candidates 1..V−1 (index i−1 ↔ category i).

    Equal scores are ordered by ``then`` (descending) when given, then by ``tie`` (a random key; default
    the candidate index). Ties matter: a scorer that gives most categories 0 (recency: ~97 % of them)
    would otherwise inherit whatever order the candidates come in — the vocabulary's order is the
    training users' popularity, which would hand every such scorer a popularity fallback.
    """
    tie = np.arange(len(scores)) if tie is None else tie
    keys = (tie, -then, -scores) if then is not None else (tie, -scores)
    order = np.lexsort(keys)[:k] + 1
    hit = np.isin(order, targets).astype(np.float64)
    recall = hit.sum() / len(targets)
    dcg = (hit / np.log2(np.arange(2, len(hit) + 2))).sum()
    idcg = (1.0 / np.log2(np.arange(2, min(k, len(targets)) + 2))).sum()
    return float(recall), float(dcg / idcg)


def evaluate(ranker: Ranker, ev, req, rows: np.ndarray) -> dict:
    """recall@10 / NDCG@10 on requests ``rows`` (held-out users) over every vocabulary category.

    Ties are broken at random: each request's metrics are the mean over ``TIE_DRAWS`` seeded random
    orders of the tied candidates (the same draws for every scorer).
    ``recency+popularity`` is a heuristic baseline beside the scorers: recency, its ties (the
    categories the profile does not hold) ordered by popularity.
    """
    model = ranker.module()
    v = len(ranker.vocab)
    rows = np.asarray([i for i in rows if len(req.targets[i])], np.int64)
    names = (*SCORES, "recency+popularity")
    acc = {k: [] for k in names}
    all_c = np.arange(1, v, dtype=np.int64)
    rng = np.random.default_rng([ranker.config.seed, 0x71E])
    pop = ranker.tables["popularity"][1:]
    for lo in range(0, len(rows), 32):
        part = rows[lo : lo + 32]
        s = scenario_scores(ranker, model, ev, req, part, [all_c] * len(part))
        s["popularity"] = np.tile(pop, len(part))
        for j, i in enumerate(part):
            ties = rng.random((TIE_DRAWS, v - 1))
            cut = slice(j * (v - 1), (j + 1) * (v - 1))
            for name in SCORES:
                acc[name].append(np.mean([rank_metrics(s[name][cut], req.targets[i], t) for t in ties], axis=0))
            acc["recency+popularity"].append(np.mean([rank_metrics(s["recency"][cut], req.targets[i], t, then=pop) for t in ties], axis=0))
    out = {"requests": int(len(rows)), "users": int(len(np.unique(req.user[rows]))) if len(rows) else 0, "k": K_TOP,
           "ties": f"random: mean over {TIE_DRAWS} seeded draws per request, the same for every scorer"}  # fmt: skip
    for name in names:
        a = np.asarray(acc[name]).reshape(-1, 2)
        out[name] = {"recall@10": float(a[:, 0].mean()) if len(a) else float("nan"),
                     "ndcg@10": float(a[:, 1].mean()) if len(a) else float("nan")}  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# Golden arrays: the profile trace and the device cases
# ---------------------------------------------------------------------------------------------


def make_golden(ranker: Ranker, ev, idx, req, rows: np.ndarray, n_requests: int = 12, n_cands: int = 48) -> dict:
    """The profile's golden trace (3 users, ≤ 300 events each) and device golden cases with edge cases."""
    rule = ranker.rule()
    weights = np.asarray([ACTION_WEIGHT[a] for a in ACTIONS])
    users = []
    for u in np.unique(req.user[rows])[:3]:
        sel = np.flatnonzero(ev.user == u)[:300]
        users.append((ev.ts[sel], idx[sel], weights[ev.action[sel]]))
    golden = golden_trace(rule, users)

    v = len(ranker.vocab)
    rng = np.random.default_rng([ranker.config.seed, 0x601D])
    pick = np.asarray(rows[np.linspace(0, len(rows) - 1, min(n_requests, len(rows))).astype(int)], np.int64)
    cands = []
    for i in pick:
        c = np.concatenate([req.targets[i], req.prof_key[i][req.prof_key[i] > 0], rng.integers(1, v, n_cands)])[:n_cands]
        cands.append(c.astype(np.int64))
    f = feeds_for(ranker, ev, req, pick, cands)
    # edge cases: an empty profile without tags, OOV candidates, a profile decayed for 10,000 h
    k, s_n, f_n = ranker.config.capacity, ranker.config.max_sets, f["context"].shape[1]
    empty = {"tagsets": np.zeros((1, s_n), np.int64), "prof_key": np.zeros((1, k), np.int64),
             "prof_w": np.zeros((1, k), np.float32), "prof_age_h": np.zeros((1, k), np.float32),
             "context": np.zeros((1, f_n), np.float32)}  # fmt: skip
    old = {kk: f[kk][:1].copy() for kk in ("tagsets", "prof_key", "prof_w", "prof_age_h", "context")}
    old["prof_age_h"] = np.where(old["prof_key"] > 0, 10_000.0, 0.0).astype(np.float32)
    n_u = len(pick)
    extra_c = [np.array([0, 1, min(2, v - 1)], np.int64), np.array([0, 1, min(2, v - 1)], np.int64)]
    for e in (empty, old):
        for kk, a in e.items():
            f[kk] = np.concatenate([f[kk], a])
    f["cand"] = np.concatenate([f["cand"], *extra_c])
    f["row_user"] = np.concatenate([f["row_user"], np.full(3, n_u), np.full(3, n_u + 1)]).astype(np.int64)
    # interleave requests in the first rows so that a traced example spans several requests
    order = np.lexsort((f["row_user"], np.concatenate([np.arange((f["row_user"] == r).sum()) for r in range(n_u + 2)])))
    f["cand"], f["row_user"] = f["cand"][order], f["row_user"][order]
    kinds = np.asarray(["recorded"] * (len(f["cand"])))
    kinds[f["row_user"] >= n_u] = "edge"
    labels = np.zeros(len(f["cand"]), np.int64)
    for j, i in enumerate(pick):
        rows_j = f["row_user"] == j
        labels[rows_j] = np.isin(f["cand"][rows_j], req.targets[i])
    labels[f["row_user"] >= n_u] = -1
    from edgeintent.rank.device import run_torch

    ref = run_torch(ranker.module(), f)
    for kk, a in f.items():
        golden[f"feed_{kk}"] = a
    golden["ref_prob_rank"], golden["ref_logit_rank"] = ref["prob_rank"], ref["logit_rank"]
    golden["case_recorded"] = (kinds == "recorded")
    golden["case_label"] = labels
    return golden


def golden_feeds(golden: dict) -> dict[str, np.ndarray]:
    return {k[5:]: v for k, v in golden.items() if k.startswith("feed_")}


# ---------------------------------------------------------------------------------------------
# The rank bundle
# ---------------------------------------------------------------------------------------------

WEIGHT_KEYS = ("interest", "keyword", "alpha_per_h", "half_life_h", "industry_of", "stump_feat", "stump_thr",
               "stump_left", "stump_right", "n_context", "popularity", "fusion_w", "fusion_b", "in_profile")  # fmt: skip
CORE = ("config.json", "weights.safetensors", "golden.npz", "metrics.json")
#: the rank bundle: model-bundle machinery (atomic writes, journalled add_files, verification), its own format
RANK_BUNDLE = BundleKind(RANK_FORMAT, CORE)


def _config_json(ranker: Ranker) -> dict:
    from edgeintent.toolkit.bundle import environment_versions

    return {"kind": "rank", "config": ranker.config.to_json(), "vocab": ranker.vocab.tolist(),
            "itemsets": [list(s) for s, _ in sorted(ranker.itemsets.items(), key=lambda kv: kv[1])],
            "context_features": ranker.context_names, "info": ranker.info, "versions": environment_versions()}  # fmt: skip


def write_rank_bundle(path, ranker: Ranker, metrics: dict, golden: dict, overwrite: bool = False) -> Path:
    """Write the bundle atomically (a temp directory renamed into place), manifest last."""
    name = str(path)
    contents = {
        "config.json": canonical_json(_config_json(ranker), f"{name}: config.json"),
        "weights.safetensors": weights_bytes({k: ranker.tables[k] for k in WEIGHT_KEYS}, f"{name}: weights.safetensors"),
        "golden.npz": golden_bytes(golden, f"{name}: golden.npz"),
        "metrics.json": canonical_json(metrics, f"{name}: metrics.json"),
    }
    return write_files(path, contents, RANK_BUNDLE, overwrite)


def _verify_rank(path) -> tuple[dict, dict[str, bytes]]:
    return verify_files(path, RANK_BUNDLE, read=CORE)


def load_rank_bundle(path) -> tuple[Ranker, dict, dict]:
    """Verify, then load ``(ranker, metrics, golden)`` (JSON, safetensors and .npy without pickle)."""
    import io

    from safetensors.numpy import load as load_st

    name = str(path)
    _, blobs = _verify_rank(path)
    try:
        cfg_j = json.loads(blobs["config.json"])
        metrics = json.loads(blobs["metrics.json"])
        tables = {k: np.array(v) for k, v in load_st(blobs["weights.safetensors"]).items()}
        with np.load(io.BytesIO(blobs["golden.npz"]), allow_pickle=False) as z:
            golden = {k: z[k] for k in z.files}
        cfg = RankConfig.from_json(cfg_j["config"])
        itemsets = {tuple(s): i + 1 for i, s in enumerate(cfg_j["itemsets"])}
        ranker = Ranker(cfg, np.asarray(cfg_j["vocab"], np.int64), itemsets, list(cfg_j["context_features"]), tables, cfg_j["info"])
        if "in_profile" not in tables or np.ndim(tables["fusion_w"]) != 3:
            raise BundleError(f"{name}: a rank bundle with the single-tier fusion of an older edgeintent; refit it with `edgeintent rank fit`")
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{name}: not a readable rank bundle ({type(exc).__name__}: {exc})") from None
    return ranker, metrics, golden


def add_rank_files(path, files: dict[str, bytes], replace: tuple[str, ...] = ()) -> None:
    """Add files (exports) to a verified rank bundle (journalled, as a model bundle's ``add_files``; ``replace``
    names directory artifacts replaced as a whole)."""
    add_files(path, files, replace=replace, kind=RANK_BUNDLE)
