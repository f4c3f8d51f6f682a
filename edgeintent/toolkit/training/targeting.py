"""User targeting with a ``find`` bundle: one sentence (zero-shot) or a few seed users (few-shot).

- **zero-shot** (FIND §4.4.1): every user's embedding of the past window (what the phone computes and
  uploads) against the text embedding of the demand; the score is their cosine.
- **few-shot prompt tuning** (§4.4.2): ``prompt_tokens`` learnable vectors are prepended to the demand's
  tokens and trained with the triplet loss max(0, margin − cos(t, e⁺) + cos(t, e⁻)) over every
  (positive, negative) pair of seed users, both towers frozen, plus ``ANCHOR`` · (1 − cos(tuned text,
  zero-shot text)) so that a handful of seeds refines the demand rather than replacing it; the score is
  the cosine with the tuned text.

Users are scored at one reference time ``at`` (default: right after the last event of the data): each
user's past window is the last ``max_len`` events of each stream before it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from edgeintent.errors import ConfigError, DataError
from edgeintent.toolkit.features import build_samples
from edgeintent.toolkit.models.exportable import predict_embeddings

PROMPT_TOKENS = 4
STEPS = 60
MARGIN = 0.2
#: weight of 1 − cos(tuned text, zero-shot text): ten seed users move the demand, they do not replace it
ANCHOR = 1.0


def check_find(model, what: str = "the bundle") -> None:
    if not hasattr(model, "encode_texts"):
        raise ConfigError(f"{what} holds a {getattr(model, 'registry_name', type(model).__name__)} model; targeting needs a "
                          f"find bundle (edgeintent train --model find)")  # fmt: skip


def user_samples(events, spec, streams, at_ms: int | None = None):
    """(Samples with one decision point per user at ``at_ms``, at_ms); default: the last event + 1 ms."""
    span = events.time_span()
    if span is None:
        raise DataError("no events to target users from")
    at = int(span[1]) + 1 if at_ms is None else int(at_ms)
    users = np.sort(events.users())
    decisions = pa.table({"user_id": pa.array(users, pa.int64()), "t_ms": pa.array(np.full(len(users), at), pa.int64())})
    return build_samples(events, spec, decisions, streams=list(streams)), at


@torch.no_grad()
def zero_shot(model, emb: np.ndarray, demand: str) -> np.ndarray:
    """cos(user embedding, demand embedding) per row of ``emb`` (n, D)."""
    model.check_demand(demand)
    model.eval()
    t = model.encode_texts([demand])[0].numpy()
    return emb @ t


def prompt_tune(model, emb: np.ndarray, demand: str, pos: np.ndarray, neg: np.ndarray, prompt_tokens: int = PROMPT_TOKENS,
                steps: int = STEPS, lr: float = 0.02, margin: float = MARGIN, anchor: float = ANCHOR,
                seed: int = 0) -> torch.Tensor:  # fmt: skip
    """Learnable prompt vectors (``prompt_tokens``, width) for ``demand``, trained with the triplet loss on the
    embeddings of the positive rows ``pos`` and negative rows ``neg`` of ``emb``; both towers frozen."""
    model.check_demand(demand)
    if len(pos) == 0 or len(neg) == 0:
        raise DataError("few-shot targeting needs at least one positive and one negative seed user")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    prompt = torch.nn.Parameter(0.02 * torch.randn(prompt_tokens, model.hparams["text_width"], generator=g))
    opt = torch.optim.Adam([prompt], lr=lr)
    ep, en = torch.from_numpy(emb[pos]).float(), torch.from_numpy(emb[neg]).float()
    ids, mask = model.token_ids([demand])
    with torch.no_grad():
        t0 = model.text(ids, mask)[0]
    try:
        for _ in range(steps):
            t = model.text(ids, mask, prompt)[0]
            loss = torch.relu(margin - (ep @ t)[:, None] + (en @ t)[None, :]).mean() + anchor * (1 - t @ t0)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return prompt.detach()


@torch.no_grad()
def prompted_scores(model, emb: np.ndarray, demand: str, prompt: torch.Tensor) -> np.ndarray:
    ids, mask = model.token_ids([demand])
    return emb @ model.text(ids, mask, prompt)[0].numpy()


def read_seed_users(path) -> np.ndarray:
    """User ids from a CSV (one per line, first column; a header line such as ``user_id`` is skipped)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the seed users ({getattr(exc, 'strerror', None) or exc})") from None
    ids = []
    for i, line in enumerate(text.splitlines()):
        cell = line.split(",")[0].strip().strip('"')
        if not cell:
            continue
        try:
            ids.append(int(cell))
        except ValueError:
            if i == 0:  # a header
                continue
            raise DataError(f"{path}: line {i + 1}: {cell!r} is not a user id") from None
    if not ids:
        raise DataError(f"{path}: no seed users (one user id per line)")
    return np.unique(np.array(ids, np.int64))


def seed_rows(users: np.ndarray, seeds: np.ndarray, path) -> np.ndarray:
    """Rows of ``users`` holding ``seeds``; a one-line error naming seed users not in the data."""
    missing = np.setdiff1d(seeds, users)
    if len(missing):
        shown = ", ".join(str(u) for u in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise DataError(f"{path}: {len(missing)} of {len(seeds)} seed users are not in the data: {shown}")
    return np.searchsorted(users, seeds)


def select(scores: np.ndarray, top: int | None, threshold: float | None) -> np.ndarray:
    """Selected rows: the ``top`` highest scores (ties by row order) or every score ≥ ``threshold``."""
    if top is not None and threshold is not None:
        raise ConfigError("give --top or --threshold, not both")
    sel = np.zeros(len(scores), bool)
    if threshold is not None:
        sel = scores >= threshold
    else:
        k = min(top if top is not None else 100, len(scores))
        sel[np.argsort(-scores, kind="stable")[:k]] = True
    return sel


def target(bundle_dir, source: str, demand: str, top: int | None = None, threshold: float | None = None,
           positives=None, negatives=None, at_ms: int | None = None, seed: int = 0,
           threads: int = 1) -> tuple[pa.Table, dict]:  # fmt: skip
    """Score every user of ``source`` for ``demand``: (table user_id, score, rank, selected; summary). The
    towers are small: one torch thread is the fastest (prompt tuning took 1.5 s on one, 9 s on two under load)."""
    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.data.sources import load_source

    torch.set_num_threads(threads)
    if top is not None and top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    if (positives is None) != (negatives is None):
        raise ConfigError("few-shot targeting needs both --seed-users and --negative-users")
    bundle = load_bundle(bundle_dir)
    model = load_model(bundle)
    check_find(model, str(bundle_dir))
    model.check_demand(demand)  # an unknown word fails before any data is read
    pos_ids = neg_ids = None
    if positives is not None:
        pos_ids, neg_ids = read_seed_users(positives), read_seed_users(negatives)
    ds = load_source(source)
    samples, at = user_samples(ds.events, bundle.spec, model.streams, at_ms)
    users = samples.user_id
    emb = predict_embeddings(model, samples)["embedding"]
    mode = "zero-shot"
    if pos_ids is not None:
        pos, neg = seed_rows(users, pos_ids, positives), seed_rows(users, neg_ids, negatives)
        scores = prompted_scores(model, emb, demand, prompt_tune(model, emb, demand, pos, neg, seed=seed))
        mode = "few-shot"
    else:
        scores = zero_shot(model, emb, demand)
    sel = select(scores, top, threshold)
    rank = np.empty(len(scores), np.int64)
    rank[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    table = pa.table({"user_id": pa.array(users, pa.int64()), "score": pa.array(scores.astype(np.float32)),
                      "rank": pa.array(rank), "selected": pa.array(sel)})  # fmt: skip
    summary = {"bundle": str(bundle_dir), "data": source, "demand": demand, "mode": mode, "at_ms": at,
               "users": int(len(users)), "selected": int(sel.sum()),
               **({"top": min(top or 100, len(users))} if threshold is None else {"threshold": threshold}),
               **({"seed_users": int(len(pos_ids)), "negative_users": int(len(neg_ids))} if pos_ids is not None else {})}  # fmt: skip
    return table, summary
