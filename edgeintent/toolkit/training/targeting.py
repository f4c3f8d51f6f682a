"""User targeting with a ``find`` bundle: one sentence (zero-shot) or a few seed users (few-shot).

- **zero-shot** (FIND §4.4.1): every user's embedding of the past window (what the phone computes and
  uploads) against the text embedding of the demand; the score is their cosine.
- **few-shot prompt tuning** (§4.4.2): ``prompt_tokens`` learnable vectors P are prepended to the demand's
  tokens (both towers frozen). The tuned demand is anchored at the zero-shot one:
  t(P) = normalise(t₀ + text(demand; P) − text(demand; 0)), and P starts at 0, so before any step the
  few-shot ranking *is* the zero-shot ranking. P is trained with the triplet loss
  max(0, margin − cos(t, e⁺) + cos(t, e⁻)) over every (positive, negative) pair of seed users, plus
  ``ANCHOR`` · (1 − cos(t, t₀)) and ``DECAY`` · ‖P‖² (weight decay toward the start). How many steps
  (0 to ``steps``, every ``CHECK_EVERY``) is chosen by leave-one-out over the seeds: each seed is left out in
  turn, P is tuned on the others, and the left-out seed is ranked among the users that are not seeds (its
  quantile; 1 − it for a negative seed). Ranking it against the other seeds would favour every move: those
  seeds trained the candidate and sit on its right side by construction. The step count with the best mean
  leave-one-out rank is used only when a sign-flip permutation test (max-T over the candidates, exact over
  all 2ⁿ flips of ten seeds, so no correction for the candidates' number or correlation) finds its gain over
  zero steps significant at ``ALPHA``; otherwise the zero-shot demand stays. The score is cos(user, t).
  The prompt acts through one attention layer and turns the demand only a little; ``toward=MOVES`` adds
  the demand moved toward the seeds, t = normalise(t₀ + A · (mean e⁺ − mean e⁻)) (Rocchio's relevance
  feedback), as candidates of the same leave-one-out and test. benchmarks/fewshot_steps.py chose the rule
  and the default (no moves) on seeds with random labels and on vague demands.

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
#: the tuned demand replaces the zero-shot one only when the sign-flip test of its leave-one-out gain (max-T over
#: the candidates) is significant at this level (the best of several noisy estimates from ten seeds beats the
#: start by chance most of the time)
ALPHA = 0.05
#: the demand moved toward the seeds, t = normalise(t₀ + A · (mean e⁺ − mean e⁻)), for each A here: candidates
#: beside the prompt's step counts, off by default (``prompt_tune(toward=MOVES)`` adds them; the same
#: leave-one-out and test decide). benchmarks/fewshot_steps.py compares both: with random seed labels the
#: moves it lets through cost AUC, and it moves less often than the prompt alone on mis-specified demands
MOVES = (0.25, 0.5, 1.0, 2.0)
TOWARD: tuple[float, ...] = ()
#: the zero-shot candidate of the leave-one-out curve
START = "steps=0"
#: random sign flips of the test when the seeds are more than 12 (all 2ⁿ flips otherwise)
FLIPS = 4096
#: the most users the left-out seeds are ranked among (evenly spaced over the rows that are not seeds)
REFERENCE = 2000


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


def _toward(t0: torch.Tensor, ep: torch.Tensor, en: torch.Tensor, alpha: float) -> torch.Tensor:
    """normalise(t₀ + α · (mean e⁺ − mean e⁻)): the demand moved toward the seeds (Rocchio's relevance feedback)."""
    t = t0 + alpha * (ep.mean(0) - en.mean(0))
    return t / t.norm().clamp(min=1e-12)


def loo_curve(model, ids, mask, t0, base, ep: torch.Tensor, en: torch.Tensor, prompt_tokens: int, steps: int, lr: float,
              margin: float, anchor: float, decay: float, toward=TOWARD, ref: torch.Tensor | None = None) -> dict[str, list[float]]:  # fmt: skip
    """The leave-one-out ranks of every candidate demand: each seed left out in turn, the candidate built from
    the other seeds, and the left-out seed's quantile among the ``ref`` users (embeddings of users that are not
    seeds, no labels needed; for a negative seed 1 − the quantile, so higher is better). The left-out seed is
    not compared with the seeds the candidate was built from: they are ranked the right way round by
    construction, which makes every move look good, even with random seeds. ``ref`` None: the other class's
    seeds (that bias included). Candidates: ``steps=K`` (the prompt tuned for K steps, ``steps=0`` the
    zero-shot demand) and ``toward=A`` (the demand moved toward the seeds by A). One list per candidate, the
    seeds in the same order."""
    emb = torch.cat([ep, en])
    is_pos = torch.arange(len(emb)) < len(ep)
    curve: dict[str, list[float]] = {}

    def note(key, i, t, other):
        s, so = float(emb[i] @ t), (other if ref is None else ref) @ t
        rank = float((so < s).float().mean() + 0.5 * (so == s).float().mean())
        curve.setdefault(key, []).append(rank if is_pos[i] else 1 - rank)

    for i in range(len(emb)):
        keep = torch.arange(len(emb)) != i
        p_in, n_in = emb[keep & is_pos], emb[keep & ~is_pos]
        if len(p_in) == 0 or len(n_in) == 0:
            continue
        other = n_in if is_pos[i] else p_in
        _tune(model, ids, mask, t0, base, p_in, n_in, prompt_tokens, steps, lr, margin, anchor, decay,
              lambda step, t, i=i, other=other: note(f"steps={step}", i, t, other))  # fmt: skip
        for a in toward:
            note(f"toward={a:g}", i, _toward(t0, p_in, n_in, a), other)
    return curve


def choose(curve: dict[str, list[float]], start: str = START, alpha: float = ALPHA) -> str:
    """The candidate to use from the leave-one-out ranks (one list per candidate, the same seeds in the same
    order; ``start`` is the zero-shot demand): the best mean rank (the first in ``curve``'s order on a tie)
    when the sign-flip test of the best gain over the start gives p < ``alpha``; otherwise the start."""
    if start not in curve:
        return start
    mean = {k: float(np.mean(v)) for k, v in curve.items()}
    best = max(mean.values())
    pick = next(k for k, v in mean.items() if v >= best - 1e-9)
    if pick == start:
        return start
    return pick if signflip_max_p(curve, start) < alpha else start


def signflip_max_p(curve: dict[str, list[float]], start: str = START, flips: int = FLIPS) -> float:
    """One-sided p-value that some candidate ranks the left-out seeds better than ``start``: a sign-flip
    permutation test of the largest mean gain over the candidates (max-T; Westfall & Young 1993). Under the
    null a seed's gains are symmetric about 0, so each seed's row of gains (one per candidate, kept together, so
    the test needs no correction for the candidates' number or their correlation) is flipped in sign: all 2ⁿ
    flips when n ≤ 12 (exact), else ``flips`` random ones (fixed generator). No positive gain: 1."""
    keys = [k for k in curve if k != start]
    if not keys:
        return 1.0
    d = np.array([curve[k] for k in keys], float) - np.asarray(curve[start], float)  # (candidates, seeds)
    observed = d.mean(1).max()
    if observed <= 1e-12:
        return 1.0
    n = d.shape[1]
    if n <= 12:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    else:
        signs = np.random.default_rng(0).choice([-1, 1], size=(flips, n))
        signs[0] = 1
    stats = (signs @ d.T / n).max(1)
    return float(np.mean(stats >= observed - 1e-12))


def reference(emb: np.ndarray, pos: np.ndarray, neg: np.ndarray, most: int = REFERENCE) -> torch.Tensor | None:
    """The embeddings the left-out seeds are ranked among: the rows that are not seeds (at most ``most``,
    evenly spaced); None when every row is a seed."""
    rest = np.setdiff1d(np.arange(len(emb)), np.concatenate([pos, neg]))
    if len(rest) == 0:
        return None
    if len(rest) > most:
        rest = rest[np.linspace(0, len(rest) - 1, most).round().astype(int)]
    return torch.from_numpy(emb[rest]).float()


class Tuned:
    """A few-shot demand: the prompt P (the anchored demand t(P)) and the seeds' move ``alpha`` applied after it,
    t = normalise(t(P) + alpha · (mean e⁺ − mean e⁻)); ``choice`` is the candidate the seeds picked."""

    def __init__(self, prompt: torch.Tensor, shift: torch.Tensor | None = None, choice: str = START):
        self.prompt, self.shift, self.choice = prompt, shift, choice

    @property
    def zero_shot(self) -> bool:
        return not bool(self.prompt.any()) and (self.shift is None or not bool(self.shift.any()))


def prompt_tune(model, emb: np.ndarray, demand: str, pos: np.ndarray, neg: np.ndarray, prompt_tokens: int = PROMPT_TOKENS,
                steps: int | None = None, lr: float = 0.02, margin: float = MARGIN, anchor: float = ANCHOR,
                decay: float = DECAY, max_steps: int = STEPS, toward=TOWARD, seed: int = 0, info: dict | None = None) -> Tuned:  # fmt: skip
    """The few-shot demand for ``demand`` from the embeddings of the positive rows ``pos`` and negative rows ``neg``
    of ``emb``; both towers frozen. ``steps`` given: the prompt tuned for that many steps (0: the zero-shot
    demand exactly). ``steps`` None: the candidate (the prompt tuned for 0…``max_steps`` steps, or the demand
    moved toward the seeds by one of ``toward``) chosen by leave-one-out over the seeds and :func:`choose`.
    Deterministic (P starts at 0); ``seed`` is accepted for the callers' sake. ``info`` receives the choice,
    the prompt steps and the mean leave-one-out rank per candidate."""
    model.check_demand(demand)
    if len(pos) == 0 or len(neg) == 0:
        raise DataError("few-shot targeting needs at least one positive and one negative seed user")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    ep, en = torch.from_numpy(emb[pos]).float(), torch.from_numpy(emb[neg]).float()
    ids, mask = model.token_ids([demand])
    shift, choice = None, f"steps={steps}"
    try:
        with torch.no_grad():
            t0 = model.text(ids, mask)[0]
            base = model.text(ids, mask, torch.zeros(prompt_tokens, model.hparams["text_width"]))[0]
        args = (prompt_tokens, max_steps if steps is None else steps, lr, margin, anchor, decay)
        curve = {}
        if steps is None:
            curve = loo_curve(model, ids, mask, t0, base, ep, en, *args, toward=toward, ref=reference(emb, pos, neg))
            choice = choose(curve) if curve else START
            kind, value = choice.split("=")
            steps = int(value) if kind == "steps" else 0
            if kind == "toward":
                shift = float(value) * (ep.mean(0) - en.mean(0))
        prompt = _tune(model, ids, mask, t0, base, ep, en, prompt_tokens, steps, *args[2:])
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    if info is not None:
        info.update(choice=choice, steps=int(steps), loo={k: float(np.mean(v)) for k, v in curve.items()})
    return Tuned(prompt, shift, choice)


@torch.no_grad()
def prompted_scores(model, emb: np.ndarray, demand: str, tuned) -> np.ndarray:
    """cos(user, t) with the few-shot demand ``tuned`` (a :class:`Tuned` or a prompt tensor):
    t = normalise(t(P) + shift), t(P) = normalise(t₀ + text(demand; P) − text(demand; 0))."""
    if isinstance(tuned, torch.Tensor):
        tuned = Tuned(tuned)
    ids, mask = model.token_ids([demand])
    t0 = model.text(ids, mask)[0]
    base = model.text(ids, mask, torch.zeros_like(tuned.prompt))[0]
    t = _anchored(model, ids, mask, t0, tuned.prompt, base)
    if tuned.shift is not None:
        t = t + tuned.shift
        t = t / t.norm().clamp(min=1e-12)
    return emb @ t.numpy()


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
        tuned = prompt_tune(model, emb, demand, pos, neg, seed=seed)
        scores = prompted_scores(model, emb, demand, tuned)
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
               **({"seed_users": int(len(pos_ids)), "negative_users": int(len(neg_ids)), "few_shot_choice": tuned.choice}
                  if pos_ids is not None else {})}  # fmt: skip
    return table, summary
