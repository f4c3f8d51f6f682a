"""User targeting with a ``find`` bundle: one sentence (zero-shot) or a few seed users (few-shot).

- **zero-shot** (FIND §4.4.1): every user's embedding of the past window (what the phone computes and
  uploads) against the text embedding of the demand; the score is their cosine.
- **few-shot prompt tuning** (§4.4.2): ``prompt_tokens`` learnable vectors P are prepended to the demand's
  tokens (both towers frozen). The tuned demand is anchored at the zero-shot one:
  t(P) = normalise(t₀ + text(demand; P) − text(demand; 0)), and P starts at 0, so before any step the
  few-shot ranking *is* the zero-shot ranking. P is trained with the triplet loss
  max(0, margin − cos(t, e⁺) + cos(t, e⁻)) over every (positive, negative) pair of seed users, plus
  ``ANCHOR`` · (1 − cos(t, t₀)) and ``DECAY`` · ‖P‖² (weight decay toward the start). How many steps
  (0 to ``steps``) is chosen by leave-one-out over the seeds: each seed is left out in turn, P is tuned
  on the others, and the left-out seed is ranked against the other class's seeds at every
  ``CHECK_EVERY`` steps. The step count with the best mean leave-one-out rank (the fewest steps on a tie)
  is used only when its gain over step 0 is significant: a one-sided paired t-test over the left-out
  seeds at ``ALPHA``, Bonferroni-corrected for the tuned step counts compared (the best of several noisy
  estimates from ten seeds beats the start by chance most of the time, and a move the seeds do not support
  costs ranking quality). Otherwise the zero-shot demand stays. The score is cos(user, t).

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
#: the most prompt-tuning steps; the leave-one-out over the seeds picks 0…STEPS, in CHECK_EVERY steps
STEPS = 30
CHECK_EVERY = 5
MARGIN = 0.2
#: weight of 1 − cos(tuned text, zero-shot text): ten seed users move the demand, they do not replace it
ANCHOR = 1.0
#: weight of ‖P‖² (weight decay toward the start, P = 0)
DECAY = 0.01
#: the tuned demand replaces the zero-shot one only when its leave-one-out gain is significant at this level,
#: Bonferroni-corrected for the tuned step counts compared (the best of several noisy estimates from ten
#: seeds beats step 0 by chance most of the time)
ALPHA = 0.05


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


def _anchored(model, ids, mask, t0: torch.Tensor, prompt: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """normalise(t₀ + text(demand; P) − text(demand; 0)): exactly t₀ at P = 0."""
    t = t0 + model.text(ids, mask, prompt)[0] - base
    return t / t.norm().clamp(min=1e-12)


def _tune(model, ids, mask, t0, base, ep: torch.Tensor, en: torch.Tensor, prompt_tokens: int, steps: int, lr: float,
          margin: float, anchor: float, decay: float, check=None) -> torch.Tensor:  # fmt: skip
    """P after ``steps`` Adam steps from 0; ``check(t)`` is called with the tuned demand at every CHECK_EVERY steps."""
    prompt = torch.nn.Parameter(torch.zeros(prompt_tokens, model.hparams["text_width"]))
    opt = torch.optim.Adam([prompt], lr=lr)
    for step in range(steps + 1):
        t = _anchored(model, ids, mask, t0, prompt, base)
        if check is not None and step % CHECK_EVERY == 0:
            check(step, t.detach())
        if step == steps:
            break
        loss = torch.relu(margin - (ep @ t)[:, None] + (en @ t)[None, :]).mean() + anchor * (1 - t @ t0)
        loss = loss + decay * (prompt * prompt).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return prompt.detach()


def loo_steps(model, ids, mask, t0, base, ep: torch.Tensor, en: torch.Tensor, prompt_tokens: int, steps: int, lr: float,
              margin: float, anchor: float, decay: float) -> tuple[int, dict[int, float]]:  # fmt: skip
    """(steps to use, mean leave-one-out rank per checked step count): each seed left out in turn, P tuned on
    the others, the left-out seed ranked against the other class's remaining seeds (1 = above every one)."""
    emb = torch.cat([ep, en])
    is_pos = torch.arange(len(emb)) < len(ep)
    curve: dict[int, list[float]] = {}
    for i in range(len(emb)):
        keep = torch.arange(len(emb)) != i
        p_in, n_in = emb[keep & is_pos], emb[keep & ~is_pos]
        if len(p_in) == 0 or len(n_in) == 0:
            continue
        other = n_in if is_pos[i] else p_in

        def check(step, t, i=i, other=other):
            s, so = float(emb[i] @ t), other @ t
            rank = (so < s).float().mean() + 0.5 * (so == s).float().mean()
            curve.setdefault(step, []).append(float(rank if is_pos[i] else 1 - rank))

        _tune(model, ids, mask, t0, base, p_in, n_in, prompt_tokens, steps, lr, margin, anchor, decay, check)
    if not curve:
        return 0, {}
    return choose_steps(curve), {k: float(np.mean(v)) for k, v in sorted(curve.items())}


def choose_steps(curve: dict[int, list[float]]) -> int:
    """The step count to use from the leave-one-out ranks per step count (one value per left-out seed, the
    same seeds in the same order): the best mean (the fewest steps on a tie) when its gain over step 0 is
    significant at ``ALPHA``, Bonferroni-corrected for the tuned step counts compared; otherwise 0."""
    mean = {k: float(np.mean(v)) for k, v in sorted(curve.items())}
    best = max(mean.values())
    pick = min(k for k, v in mean.items() if v >= best - 1e-9)
    if pick == 0 or 0 not in curve:
        return 0
    return pick if loo_gain_p(curve[pick], curve[0]) * (len(mean) - 1) < ALPHA else 0


def loo_gain_p(tuned: list[float], start: list[float]) -> float:
    """One-sided p-value of a paired t-test that the left-out seeds rank better after tuning than at the
    start (the same seeds, in the same order). Differences that are all equal: 0 if positive, else 1."""
    from scipy.stats import ttest_rel

    d = np.asarray(tuned, float) - np.asarray(start, float)
    if len(d) < 2 or np.allclose(d, d[0]):
        return 0.0 if len(d) and d[0] > 1e-12 else 1.0
    return float(ttest_rel(tuned, start, alternative="greater").pvalue)


def prompt_tune(model, emb: np.ndarray, demand: str, pos: np.ndarray, neg: np.ndarray, prompt_tokens: int = PROMPT_TOKENS,
                steps: int | None = None, lr: float = 0.02, margin: float = MARGIN, anchor: float = ANCHOR,
                decay: float = DECAY, max_steps: int = STEPS, seed: int = 0, info: dict | None = None) -> torch.Tensor:  # fmt: skip
    """Learnable prompt vectors (``prompt_tokens``, width) for ``demand``, trained with the triplet loss on the
    embeddings of the positive rows ``pos`` and negative rows ``neg`` of ``emb``; both towers frozen. ``steps``
    None: chosen by leave-one-out over the seeds (up to ``max_steps``); 0 gives the zero-shot demand exactly.
    Deterministic (P starts at 0); ``seed`` is accepted for the callers' sake. ``info`` receives the chosen
    steps and the leave-one-out curve."""
    model.check_demand(demand)
    if len(pos) == 0 or len(neg) == 0:
        raise DataError("few-shot targeting needs at least one positive and one negative seed user")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    ep, en = torch.from_numpy(emb[pos]).float(), torch.from_numpy(emb[neg]).float()
    ids, mask = model.token_ids([demand])
    try:
        with torch.no_grad():
            t0 = model.text(ids, mask)[0]
            base = model.text(ids, mask, torch.zeros(prompt_tokens, model.hparams["text_width"]))[0]
        args = (prompt_tokens, max_steps if steps is None else steps, lr, margin, anchor, decay)
        curve = {}
        if steps is None:
            steps, curve = loo_steps(model, ids, mask, t0, base, ep, en, *args)
        prompt = _tune(model, ids, mask, t0, base, ep, en, prompt_tokens, steps, *args[2:])
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    if info is not None:
        info.update(steps=int(steps), loo=curve)
    return prompt


@torch.no_grad()
def prompted_scores(model, emb: np.ndarray, demand: str, prompt: torch.Tensor) -> np.ndarray:
    """cos(user, t(P)) with the anchored demand t(P) = normalise(t₀ + text(demand; P) − text(demand; 0))."""
    ids, mask = model.token_ids([demand])
    t0 = model.text(ids, mask)[0]
    base = model.text(ids, mask, torch.zeros_like(prompt))[0]
    return emb @ _anchored(model, ids, mask, t0, prompt, base).numpy()


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
