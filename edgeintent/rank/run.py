"""The rank stage's commands as library functions (the CLI is a thin edge over these).

- :func:`run_fit`    fit on a source, write the rank bundle (held-out metrics inside);
- :func:`run_score`  score a candidates file (``user_id, category_id``) for users of a source;
- :func:`run_export` export the on-device scorer to model targets and check it against torch with
  the parity functions (:func:`edgeintent.parity.compare` with the tolerance table of ``parity/policy.py``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgeintent.errors import DataError, ExportError, shown
from edgeintent.rank import RankConfig
from edgeintent.rank import data as D
from edgeintent.rank.fit import (Ranker, feeds_for, fit_ranker, golden_feeds, load_rank_bundle, write_rank_bundle,
                                 add_rank_files)  # fmt: skip
from edgeintent.rank.profile import ACTION_WEIGHT, ACTIONS, Profile

CANDIDATE_COLUMNS = ("user_id", "category_id")


def run_fit(source: str, out: Path, cfg: RankConfig, overwrite: bool = False, say=None) -> dict:
    from edgeintent.toolkit.data.sources import load_source

    ranker, metrics, golden = fit_ranker(load_source(source), cfg, say=say)
    metrics["source"] = source
    write_rank_bundle(out, ranker, metrics, golden, overwrite=overwrite)
    return metrics


def read_candidates(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(user_id, category_id)`` int64 arrays of a .csv / .parquet candidates file (one-line DataError otherwise)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: candidates file does not exist")
    try:
        table = pq.read_table(p) if p.suffix == ".parquet" else pacsv.read_csv(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{p}: unreadable candidates file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    missing = [c for c in CANDIDATE_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"{p}: candidates need the columns {', '.join(CANDIDATE_COLUMNS)}; missing {', '.join(missing)} "
                        f"(has {', '.join(map(str, table.column_names[:8])) or 'none'})")  # fmt: skip
    if table.num_rows == 0:
        raise DataError(f"{p}: no candidates (the file has a header but no rows)")
    cols = []
    for c in CANDIDATE_COLUMNS:
        col = table[c]
        if not pa.types.is_integer(col.type) or col.null_count:
            raise DataError(f"{p}: column {c} must hold integer ids without gaps, got {col.type}")
        cols.append(col.to_numpy().astype(np.int64))
    return cols[0], cols[1]


def context_stumps(ranker: Ranker) -> dict:
    """The bundle's Gentle AdaBoost stumps as :class:`Stumps` per industry (padding rounds, whose two
    leaves are 0, left out; a dropped industry has none)."""
    from edgeintent.rank.scorers import Stumps

    t = ranker.tables
    out = {}
    for g in range(t["stump_feat"].shape[0]):
        real = np.flatnonzero((t["stump_left"][g] != 0) | (t["stump_right"][g] != 0))
        if len(real):
            out[g] = Stumps(t["stump_feat"][g, real].astype(np.int64), t["stump_thr"][g, real].astype(np.float64),
                            t["stump_left"][g, real].astype(np.float64), t["stump_right"][g, real].astype(np.float64))  # fmt: skip
    return out


def budgeted_context(ranker: Ranker, context: np.ndarray, t_ms: np.ndarray, cands: list[np.ndarray], budget: int,
                     scorer=None) -> tuple[np.ndarray, dict]:  # fmt: skip
    """(requests, G) context scores through :class:`ContextScorer`: requests in time order, each spending at
    most ``budget`` stump rounds on its candidates' industries, with the (industry, context hour) cache; an
    industry left unscored in a request gets the neutral 0.5. Returns the scores and what it cost."""
    from edgeintent.rank.profile import HOUR_MS
    from edgeintent.rank.scorers import ContextScorer

    scorer = scorer or ContextScorer(context_stumps(ranker))
    g_n = int(ranker.tables["stump_feat"].shape[0])
    out = np.full((len(cands), g_n), 0.5, np.float32)
    skipped = 0
    for r in np.argsort(t_ms, kind="stable"):
        groups = sorted(set(ranker.tables["industry_of"][cands[r]].tolist()))
        key = (int(t_ms[r] // HOUR_MS), tuple(np.round(context[r], 4).tolist()))  # the context hour
        for g, v in scorer.score(groups, context[r].astype(np.float64), key, budget).items():
            if v is None:
                skipped += 1
            else:
                out[r, g] = v
    return out, {"budget": budget, "rounds_used": scorer.rounds_used, "cached": len(scorer.cache), "industries_skipped": skipped}


def score_candidates(ranker: Ranker, dataset, users: np.ndarray, cats: np.ndarray, where: str = "candidates",
                     context_budget: int | None = None) -> list[dict]:  # fmt: skip
    """Scores of each (user, category) candidate at the end of the user's history in ``dataset``.

    ``context_budget``: score the context scenario through :class:`ContextScorer` (at most that many stump
    rounds per request, cached per (industry, context hour)) instead of every industry's stumps."""
    from edgeintent.rank.device import run_torch

    ev = D.events_of(dataset)
    known = set(np.unique(ev.user).tolist())
    bad_u = [u for u in users.tolist() if u not in known]
    if bad_u:
        raise DataError(f"{where}: user_id {shown(bad_u[0])} has no cloud events in {dataset.name} ({len(set(bad_u))} unknown users)")
    idx_c = D.index_of(ranker.vocab, cats)
    if (idx_c == 0).any():
        raise DataError(f"{where}: category_id {shown(int(cats[idx_c == 0][0]))} is not in the ranker's vocabulary "
                        f"({int((idx_c == 0).sum())} unknown candidates)")  # fmt: skip
    rule = ranker.rule()
    weights = np.asarray([ACTION_WEIGHT[a] for a in ACTIONS])
    idx = D.index_of(ranker.vocab, ev.cat)
    uniq = np.unique(users)
    keys, ws, ts, tags, t_req = [], [], [], [], []
    for u in uniq:
        sel = np.flatnonzero(ev.user == u)
        p = Profile(rule)
        counts: dict[int, int] = {}
        for r in sel:
            p.update(int(ev.ts[r]), int(idx[r]), float(weights[ev.action[r]]))
            if idx[r] > 0:
                counts[int(idx[r])] = counts.get(int(idx[r]), 0) + 1
        a, b, c = p.arrays()
        keys.append(a), ws.append(b), ts.append(c)
        tags.append(D.user_tags(counts, len(sel), bool((ev.action[sel] == 3).any())))
        t_req.append(int(ev.ts[sel[-1]]))
    req = D.Requests(uniq, np.asarray(t_req, np.int64), np.stack(keys), np.stack(ws), np.stack(ts), tags, [], [])
    cands = [idx_c[users == u] for u in uniq]
    feeds = feeds_for(ranker, ev, req, np.arange(len(uniq)), cands)
    budget_info = None
    if context_budget is not None:
        feeds["context_by_industry"], budget_info = budgeted_context(ranker, feeds["context"], req.t_ms, cands, context_budget)
    out = run_torch(ranker.module(), feeds)
    rows = []
    pos = 0
    for u, cs in zip(uniq, cands, strict=True):
        for j, ci in enumerate(cs):
            k = pos + j
            rows.append({"user_id": int(u), "category_id": int(ranker.vocab[ci]), "score": float(out["prob_rank"][k]),
                         **{s: float(out[s][k]) for s in ("interest", "context", "keyword", "recency")}})  # fmt: skip
        pos += len(cs)
    rows.sort(key=lambda r: (r["user_id"], -r["score"], r["category_id"]))
    return rows


def run_score(bundle: Path, source: str, candidates: Path, context_budget: int | None = None) -> list[dict]:
    from edgeintent.toolkit.data.sources import load_source

    ranker, _, _ = load_rank_bundle(bundle)
    users, cats = read_candidates(candidates)
    return score_candidates(ranker, load_source(source), users, cats, where=str(candidates), context_budget=context_budget)


def parity_check(ranker: Ranker, golden: dict, target: str, artifact: Path, precision: str = "fp32") -> dict:
    """The artifact in its runtime against the recorded torch outputs, on every golden row at once and
    one request at a time, judged by :func:`edgeintent.parity.compare` and the tolerance table."""
    from edgeintent.exporters import ArtifactMeta, get_target
    from edgeintent.parity import compare
    from edgeintent.parity.policy import tolerance
    from edgeintent.rank.device import take_rows
    from edgeintent.runtimes import open_artifact

    t = get_target(target)
    model = ranker.module()
    sig = model.signature()
    meta = ArtifactMeta(target, precision, str(artifact), "rank", sig.inputs, sig.outputs, 0)
    feeds = golden_feeds(golden)
    n = len(feeds["cand"])
    ref = {"prob_rank": golden["ref_prob_rank"].astype(np.float64), "logit_rank": golden["ref_logit_rank"].astype(np.float64)}
    got = {o: np.full(n, np.nan) for o in ref}
    got1 = {o: np.full(n, np.nan) for o in ref}
    with open_artifact(t.artifact(artifact, meta)) as sess:
        res = sess.run(feeds)
        for o in ref:
            got[o][:] = np.asarray(res[o], np.float64).reshape(-1)
        for r in np.unique(feeds["row_user"]):
            rows = np.flatnonzero(feeds["row_user"] == r)
            res = sess.run(take_rows(feeds, rows))
            for o in ref:
                got1[o][rows] = np.asarray(res[o], np.float64).reshape(-1)
    tol = tolerance(target, precision)
    labels = golden["case_label"]
    recorded = golden["case_recorded"].astype(bool)
    m_all, why_all = compare(ref, got, "rank", labels, recorded, tol)
    m_one, why_one = compare(ref, got1, "rank", labels, recorded, tol, ranking=False)
    return {"target": target, "precision": precision, "runtime": sess.runtime, "rows": n, "batch": m_all, "per_request": m_one,
            "passed": not (why_all or why_one), "reasons": [f"batch: {w}" for w in why_all] + [f"per_request: {w}" for w in why_one]}  # fmt: skip


def export_scorer(ranker: Ranker, golden: dict, target: str, out: Path, precision: str = "fp32") -> dict:
    """Write the scorer's artifact for ``target`` at ``out`` with the house exporter; returns its extra metadata."""
    from edgeintent.exporters import get_target
    from edgeintent.rank.device import exportable

    t = get_target(target)
    if t.kind != "model":
        raise ExportError(f"target {target} is a {t.kind}, not a model target; the ranker exports to model targets only")
    why = t.missing()
    if why:
        raise ExportError(f"cannot export to {target}: {why}")
    model, samples = exportable(ranker.module(), golden_feeds(golden))
    return t.export(model, None, samples, out, precision)


def run_export(bundle: Path, targets: list[str], precision: str = "fp32") -> list[dict]:
    """Export to each target, check parity, and add the artifacts that pass to the bundle."""
    from edgeintent.exporters import artifact_files, get_target

    ranker, _, golden = load_rank_bundle(bundle)
    results = []
    for target in targets:
        name = get_target(target).artifact_name(precision)
        with tempfile.TemporaryDirectory(prefix="edgeintent-rank-") as tmp:
            out = Path(tmp) / name
            export_scorer(ranker, golden, target, out, precision)
            res = parity_check(ranker, golden, target, out, precision)
            if res["passed"]:  # a directory artifact (an .mlpackage) is replaced as a whole: no stale file stays
                rel = f"exports/{target}/{name}"
                add_rank_files(bundle, artifact_files(out, rel), replace=(rel,) if out.is_dir() else ())
        results.append(res)
    return results
