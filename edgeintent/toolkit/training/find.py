"""Training ``find`` (models/find.py): self-supervised pretraining, then user-text alignment.

Every decision point (user, t) of the training users is a *past* window (what the user encoder reads,
events before t). The losses:

- **contrastive forecasting** (FIND §4.2.1, CPC style): the embedding of the window up to t, through one
  linear head per step k = 1 … ``forecast_steps``, predicts the embedding of the same user's window k
  windows ahead (the user's last decision point in (t + (k−1)·W, t + k·W], W the table's ``window_ms``),
  by InfoNCE against the other targets in the batch; weight ``forecast`` (0: off);
- **cyclic regulariser**: embeddings one cycle apart (the user's last decision point at or before
  t + ``cycle_ms``, at most W earlier; a day) kept close, 1 − cos; weight ``cyclic`` (0: off);
- **VICReg regulariser** (optional, against dimensional collapse): variance + covariance terms on the
  batch of user embeddings; weight ``vicreg`` (0: off);
- **past alignment** (optional): the same InfoNCE with sentences about the *past* window the encoder
  reads (its last ``max_len`` events before t), so the embedding keeps what the window holds (past
  purchases, carts) in the language the demands use; weight ``past_align`` (0: off);
- **alignment** (§4.3.2): InfoNCE between the past-window user embedding and the text embedding of a
  sentence about the *future* window (t, t + horizon] (``features.text``): each step draws either one
  clause of the future or a random subset of them, and every user whose future makes a text true is a
  positive of that text (soft targets), so "users who will browse category 3" is not taught to reject
  the other users who will.

The first ``pretrain_share`` of the epochs train the user encoder on the self-supervised losses alone;
the rest add the alignment (the self-supervised terms stay as regularisers). Early stopping follows the
validation users' zero-shot AUC over the most frequent single-clause demands.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch

from edgeintent.errors import ConfigError, DataError
from edgeintent.toolkit.features.text import TemplateTable, WindowIndex, sentence, table_for
from edgeintent.toolkit.models.exportable import batch_for, predict_embeddings
from edgeintent.toolkit.training.trainer import EarlyStopping
from edgeintent.toolkit.training import metrics as M

#: slot values kept in the vocabulary: seen in the future windows of at least this many training users
MIN_USERS = 2
MAX_VALUES = 3000
#: single-clause demands the validation zero-shot AUC averages over
VALID_DEMANDS = 12
#: training decision points drawn per epoch (at most): an epoch's cost stays bounded on large sources
ROWS_PER_EPOCH = 20_000


def _user_keys(samples) -> tuple[np.ndarray, np.ndarray]:
    """(sortable key per row, user rank per row): rows are sorted by (user, t)."""
    users, rank = np.unique(samples.user_id, return_inverse=True)
    t = samples.t_ms.astype(np.int64)
    span = int(t.max() - t.min()) + 2
    return rank.astype(np.int64) * span + (t - t.min()), rank


def forecast_targets(samples, window_ms: int, steps: int) -> np.ndarray:
    """(steps, n): row of the same user's last decision point in (t + (k−1)·W, t + k·W], or −1."""
    key, rank = _user_keys(samples)
    order = np.argsort(key, kind="stable")
    skey, t = key[order], samples.t_ms.astype(np.int64)
    out = np.full((steps, len(key)), -1, np.int64)
    for k in range(1, steps + 1):
        j = np.searchsorted(skey, key + k * window_ms, "right") - 1
        j = order[np.clip(j, 0, len(key) - 1)]
        ok = (rank[j] == rank) & (t[j] > t + (k - 1) * window_ms)
        out[k - 1] = np.where(ok, j, -1)
    return out


def cyclic_partners(samples, cycle_ms: int, tolerance_ms: int) -> np.ndarray:
    """(n,): row of the same user's last decision point in [t + C − tol, t + C], or −1."""
    key, rank = _user_keys(samples)
    order = np.argsort(key, kind="stable")
    skey, t = key[order], samples.t_ms.astype(np.int64)
    j = order[np.clip(np.searchsorted(skey, key + cycle_ms, "right") - 1, 0, len(key) - 1)]
    return np.where((rank[j] == rank) & (t[j] >= t + cycle_ms - tolerance_ms), j, -1)


def future_clauses(table: TemplateTable, events, samples) -> list[list[tuple[str, str | None]]]:
    """The clauses of each decision point's future window (t, t + horizon]."""
    t = samples.t_ms.astype(np.int64)
    return WindowIndex(table, events).clauses(samples.user_id, t, t + table.horizon_ms)


def past_clauses(table: TemplateTable, events, samples, max_len: dict[str, int]) -> list[list[tuple[str, str | None]]]:
    """The clauses of each decision point's *past* window: the last ``max_len[s]`` events of each stream
    before t (what the user encoder reads)."""
    t = samples.t_ms.astype(np.int64)
    last_n = {s: int(n) for s, n in max_len.items() if s in table_streams(table)}
    return WindowIndex(table, events).clauses(samples.user_id, np.full(len(t), np.iinfo(np.int64).min // 2), t - 1, last_n)


def table_streams(table: TemplateTable) -> set[str]:
    return {tp.stream for tp in table.templates}


def build_vocab(base: tuple[str, ...], clauses: list[list[tuple[str, str | None]]], users: np.ndarray) -> tuple[str, ...]:
    """``base`` + the slot values named in the future windows of at least MIN_USERS users (most users first)."""
    seen: dict[str, set] = {}
    for u, cl in zip(users, clauses):
        for _, v in cl:
            if v is not None:
                seen.setdefault(v.lower(), set()).add(int(u))
    values = sorted((v for v, us in seen.items() if len(us) >= MIN_USERS and v not in base), key=lambda v: (-len(seen[v]), v))
    return tuple(base) + tuple(values[:MAX_VALUES])


def known(clauses, words: set[str]) -> list[list[tuple[str, str | None]]]:
    """Clauses whose slot value is in the vocabulary."""
    return [[c for c in cl if c[1] is None or c[1].lower() in words] for cl in clauses]


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float, pos: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE of rows of ``a`` against rows of ``b`` (L2-normalised); ``pos`` (B, B) bool marks
    every positive pair (default: the diagonal), spread as soft targets."""
    logits = a @ b.T / tau
    if pos is None:
        target = torch.arange(len(a))
        return 0.5 * (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target))
    p = pos.float()
    row = -(torch.log_softmax(logits, 1) * p / p.sum(1, keepdim=True).clamp(min=1)).sum(1)
    col = -(torch.log_softmax(logits.T, 1) * p.T / p.T.sum(1, keepdim=True).clamp(min=1)).sum(1)
    return 0.5 * (row[p.sum(1) > 0].mean() + col[p.T.sum(1) > 0].mean())


def vicreg(z: torch.Tensor) -> torch.Tensor:
    """VICReg's variance + covariance terms (Bardes et al. 2022) on a batch of L2-normalised embeddings
    (B, D), scaled by √D so an isotropic batch has unit variance per dimension: mean(relu(1 − std_j)) keeps
    every dimension in use, Σ_{i≠j} cov_ij² / D decorrelates them (against dimensional collapse)."""
    if len(z) < 2:
        return torch.zeros(())
    z = z * math.sqrt(z.shape[1])
    z = z - z.mean(0)
    std = torch.sqrt(z.var(0) + 1e-4)
    cov = z.T @ z / (len(z) - 1)
    off = cov - torch.diag(torch.diag(cov))
    return torch.relu(1 - std).mean() + (off * off).sum() / z.shape[1]


def draw_texts(table: TemplateTable, clauses, rows: np.ndarray, rng: np.random.Generator, global_share: float = 0.0):
    """Per row, a sentence about its future (one clause, or a random subset of up to 6) and its clause set.
    With probability ``global_share`` a row whose future has slot-free clauses (``buy anything``, ``add at
    least 3 items to the cart``) gets one of those alone."""
    texts, sets = [], []
    for i in rows:
        cl = clauses[i]
        if not cl:
            texts.append(sentence(table, []))
            sets.append(frozenset({("idle", None)}))
            continue
        slot_free = [c for c in cl if c[1] is None]
        if global_share > 0 and slot_free and rng.random() < global_share:
            pick = [slot_free[int(rng.integers(len(slot_free)))]]
            texts.append(sentence(table, pick))
            sets.append(frozenset(pick))
            continue
        k = 1 if rng.random() < 0.5 else int(rng.integers(1, min(len(cl), 6) + 1))
        pick = [cl[j] for j in rng.choice(len(cl), size=k, replace=False)]
        texts.append(sentence(table, pick))
        sets.append(frozenset(pick))
    return texts, sets


def holds_matrix(clauses, rows: np.ndarray, sets: list[frozenset]) -> torch.Tensor:
    """(B, B) bool: the text of column j is true of row i's future."""
    fut = [frozenset(clauses[i]) or frozenset({("idle", None)}) for i in rows]
    return torch.tensor([[s <= f for s in sets] for f in fut])


def fit(model, prep, cfg, on_epoch: Callable[[dict], None] | None = None) -> tuple[list[dict], int]:
    """Train ``model`` (a ``find``) in place on ``prep``; returns (history, best epoch)."""
    if prep.events is None:
        raise ConfigError("find trains on the raw events (its sentences describe each user's future window)")
    h = model.hparams
    table = table_for(model.streams)
    samples, tr, va = prep.samples, prep.train_idx, prep.valid_idx
    clauses = future_clauses(table, prep.events, samples)
    vocab = build_vocab(tuple(h["vocab"]), [clauses[i] for i in tr], samples.user_id[tr])
    model.set_vocab(vocab)
    clauses = known(clauses, set(vocab))
    past = known(past_clauses(table, prep.events, samples, prep.spec.max_len), set(vocab)) if h["past_align"] > 0 else None
    end = prep.events.time_span()[1]
    has_future = samples.t_ms.astype(np.int64) + table.horizon_ms <= end
    align_rows = tr[has_future[tr]] if has_future[tr].mean() >= 0.5 else tr
    targets = forecast_targets(samples, table.window_ms, h["forecast_steps"])
    partners = cyclic_partners(samples, table.cycle_ms, table.window_ms)
    heads = torch.nn.ModuleList(torch.nn.Linear(h["dim"], h["dim"]) for _ in range(h["forecast_steps"]))
    params = list(model.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    tau = h["temperature"]
    self_supervised = h["forecast"] > 0 or h["cyclic"] > 0 or h["vicreg"] > 0
    n_pre = int(round(cfg.epochs * h["pretrain_share"])) if self_supervised else 0
    n_pre = min(n_pre, cfg.epochs - 1)
    demands = valid_demands(clauses, tr)
    history, stop = [], EarlyStopping(cfg.patience)
    for epoch in range(1, cfg.epochs + 1):
        align = epoch > n_pre
        model.train()
        t0 = time.perf_counter()
        pool = align_rows if align else tr
        order = rng.permutation(pool)[:ROWS_PER_EPOCH]
        total, n_batches = 0.0, 0
        for lo in range(0, len(order), cfg.batch_size):
            rows = np.sort(order[lo : lo + cfg.batch_size])
            if len(rows) < 4:
                continue
            extra = [targets[k][rows] for k in range(len(targets))] + [partners[rows]]
            ext_rows = np.unique(np.concatenate([e[e >= 0] for e in extra]))
            allrows = np.concatenate([rows, ext_rows])
            emb = model(batch_for(model, samples, allrows))["embedding"]
            u = emb[: len(rows)]
            where = {int(r): len(rows) + i for i, r in enumerate(ext_rows)}
            loss = torch.zeros(())
            if h["forecast"] > 0:
                parts = []
                for k in range(len(targets)):
                    ok = targets[k][rows] >= 0
                    if ok.sum() >= 2:
                        z = emb[[where[int(j)] for j in targets[k][rows][ok]]]
                        pred = heads[k](u[torch.from_numpy(ok)])
                        pred = pred / pred.norm(dim=-1, keepdim=True).clamp(min=1e-6)
                        parts.append(info_nce(pred, z, tau))
                if parts:
                    loss = loss + h["forecast"] * torch.stack(parts).mean()
            if h["cyclic"] > 0:
                ok = partners[rows] >= 0
                if ok.any():
                    z = emb[[where[int(j)] for j in partners[rows][ok]]]
                    loss = loss + h["cyclic"] * (1 - (u[torch.from_numpy(ok)] * z).sum(-1)).mean()
            if h["vicreg"] > 0:
                loss = loss + h["vicreg"] * vicreg(u)
            if align:
                texts, sets = draw_texts(table, clauses, rows, rng, h["global_share"])
                loss = loss + info_nce(u, model.encode_texts(texts), tau, holds_matrix(clauses, rows, sets))
                if past is not None:  # the same language about the window the encoder reads (what it has to keep)
                    texts, sets = draw_texts(table, past, rows, rng)
                    loss = loss + h["past_align"] * info_nce(u, model.encode_texts(texts), tau, holds_matrix(past, rows, sets))
            if not loss.requires_grad:
                continue
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            total += float(loss.detach())
            n_batches += 1
        auc = zero_shot_auc(model, table, samples, va[has_future[va]] if has_future[va].any() else va, clauses, demands) if align else math.nan
        row = {"epoch": epoch, "stage": "align" if align else "pretrain", "loss": total / max(n_batches, 1),
               "valid_auc": auc, "seconds": time.perf_counter() - t0}  # fmt: skip
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if not align:
            continue
        if stop.update(model, auc, epoch):
            break
    stop.restore(model)
    model.eval()
    return history, stop.best_epoch


def valid_demands(clauses, rows: np.ndarray, n: int = VALID_DEMANDS) -> list[tuple[str, str | None]]:
    """The ``n`` single clauses most often true of the rows' futures."""
    c = Counter(x for i in rows for x in set(clauses[i]))
    return [k for k, _ in c.most_common(n)]


@torch.no_grad()
def zero_shot_auc(model, table, samples, rows: np.ndarray, clauses, demands) -> float:
    """Mean AUC over ``demands`` of cos(user, demand) against whether the demand holds of the row's future."""
    if len(rows) == 0 or not demands:
        return math.nan
    model.eval()
    emb = torch.from_numpy(predict_embeddings(model, samples, rows)["embedding"])
    t = model.encode_texts([sentence(table, [d]) for d in demands])
    scores = (emb @ t.T).numpy()
    aucs = []
    for j, d in enumerate(demands):
        y = np.array([d in clauses[i] for i in rows], np.int8)
        if 0 < y.mean() < 1:
            aucs.append(M.auc(y, scores[:, j]))
    return float(np.mean(aucs)) if aucs else math.nan


def linear_probe(emb: np.ndarray, y: np.ndarray, users: np.ndarray, seed: int = 0, fit_share: float = 0.2,
                 keep_scores: bool = False) -> dict:  # fmt: skip
    """FIND §5.1.3: a logistic regression on the embeddings of ``fit_share`` of the users, scored on the others
    (AUC and KS). ``emb`` may be any feature matrix (the aggregates baseline uses the same function).
    ``keep_scores``: the result also holds ``scored`` (the scored rows) and ``scores`` (their decision values),
    so two feature sets probed with the same ``seed`` (the same fitting users) can be compared row by row.

    Features are standardised; the L2 strength is chosen by cross-validated AUC *within the fitting users*
    (stratified folds grouped by user; scikit-learn's ``LogisticRegressionCV``), so a 32-d embedding fitted
    on a few dozen users is not judged by an unregularised fit, and the scored users play no part in it."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    u = np.unique(users)
    fit_users = np.random.default_rng(seed).choice(u, size=max(1, int(round(fit_share * len(u)))), replace=False)
    on = np.isin(users, fit_users)
    if len(np.unique(y[on])) < 2 or len(np.unique(y[~on])) < 2:
        raise DataError("linear probe: both classes are needed among the fitting and the scored users")
    minority = int(min(y[on].sum(), (1 - y[on]).sum()))
    folds = min(5, minority, len(np.unique(users[on])))
    if folds >= 2:
        cv = list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(emb[on], y[on], users[on]))
        lr = LogisticRegressionCV(Cs=np.logspace(-3, 2, 11), cv=cv, scoring="roc_auc", max_iter=2000, l1_ratios=(0.0,),
                                  use_legacy_attributes=False)
    else:
        lr = LogisticRegression(max_iter=1000)
    clf = make_pipeline(StandardScaler(), lr).fit(emb[on], y[on])
    s = clf.decision_function(emb[~on])
    out = {"auc": M.auc(y[~on], s), "ks": M.ks(y[~on], s), "fit_rows": int(on.sum()), "scored_rows": int((~on).sum()),
           "rate": float(y[~on].mean()), "C": float(np.ravel(lr.C_)[0]) if hasattr(lr, "C_") else 1.0}  # fmt: skip
    return out | ({"scored": np.flatnonzero(~on), "scores": s} if keep_scores else {})


def summary(model, samples, idx: np.ndarray, seed: int = 0) -> dict:
    """What the train summary and ``edgeintent eval`` add for ``find``: linear probes of the embedding on
    ``samples[idx]`` for every observed label with both classes (fit on 1/5 of the users, scored on 4/5)."""
    emb = predict_embeddings(model, samples, idx)["embedding"]
    probes = {}
    for task in ("buy_rt", "buy_long", "stay"):
        if task not in samples.labels:
            continue
        obs = samples.observed[task][idx]
        try:
            probes[task] = linear_probe(emb[obs], samples.labels[task][idx][obs].astype(np.int8), samples.user_id[idx][obs], seed)
        except DataError:
            continue
    return {"probe": probes, "vocabulary": len(model.vocab), "text_parameters": sum(p.numel() for p in model.text.parameters())}

