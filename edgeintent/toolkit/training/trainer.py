"""Training: split by user → fit the FeatureSpec on training users → featurize → train → evaluate → bundle.

Torch models train with AdamW on per-task BCE (weights in the config, unobserved labels masked out),
plus the model's own ``aux_loss(outputs)`` when it has one (AITM's calibrator), with early stopping on
the main task's validation AUC (the model's ``selection_task``, else ``buy_rt`` when it has it), among the
epochs that meet the model's ``epoch_condition`` when it declares one (AITM: the funnel's order). Class
imbalance: ``pos_weight="auto"`` weighs positives by neg/pos (capped) and afterwards shifts each head's
bias by −log(pos_weight), the prior correction that makes the weighted model's probabilities calibrated
again (models without ``shift_logit`` train unweighted; IIDN's auxiliary stay task is its own remedy).
scikit-learn models (the GBDT baseline) use their own ``fit``.

Deterministic for a seed: same data, same seed, same thread count → identical weights.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from edgeintent import __version__
from edgeintent.errors import ConfigError, DataError
from edgeintent.toolkit.models.base import BATCH_ROWS  # data-parallel slices draw the whole batch's noise
from edgeintent.toolkit.training import metrics as M
from edgeintent.toolkit.training.funnel import funnel_report
from edgeintent.toolkit.features import (
    FeatureSpec,
    FitConfig,
    LabelConfig,
    Samples,
    build_samples,
    fit_spec,
    is_funnel,
    split_users,
)
from edgeintent.toolkit.models import create_model, get_entry, model_config
from edgeintent.toolkit.golden import build_golden
from edgeintent.toolkit.golden_events import GOLDEN_EVENTS, build_golden_events
from edgeintent.toolkit.models.base import count_parameters
from edgeintent.toolkit.models.exportable import batch_for, predict_logits, sigmoid
from edgeintent.toolkit.data.dataset import Dataset
from edgeintent.toolkit.data.schema import EventLog


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 3
    seed: int = 0
    valid_share: float = 0.2
    pos_weight: str = "auto"  # "auto", "none" or a number
    max_pos_weight: float = 20.0
    task_weights: tuple[tuple[str, float], ...] = ()
    threads: int = 1
    golden_rows: int = 256
    micro_batches: int = 1  # slices each batch is computed in (gradients accumulated); a multiple of the workers

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.patience < 1 or self.micro_batches < 1:
            raise ConfigError("epochs, batch size, patience, micro-batches and learning rate must be positive")
        if not 0.0 < self.valid_share < 1.0:
            raise ConfigError(f"valid_share must be in (0, 1), got {self.valid_share}")
        if self.pos_weight not in ("auto", "none"):
            try:
                float(self.pos_weight)
            except ValueError:
                raise ConfigError(f"pos_weight must be auto, none or a number, got {self.pos_weight!r}") from None


@dataclass
class Prepared:
    spec: FeatureSpec
    samples: Samples
    train_idx: np.ndarray
    valid_idx: np.ndarray
    events: EventLog | None = None  # the events featurized (for the raw-event golden cases)


@dataclass
class TrainResult:
    model: object
    prepared: Prepared
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    valid_logits: dict[str, np.ndarray] = field(default_factory=dict)


def prepare(
    ds: Dataset, seed: int, valid_share: float, fit: FitConfig | None = None, labels: LabelConfig | None = None,
    featurize: Callable[[Dataset, FeatureSpec], Samples] | None = None,
) -> Prepared:
    """Split by user, fit the spec on the training users only, featurize every decision point (in this
    process, or with ``featurize``, e.g. an engine's, which must return the samples sorted by (user, t))."""
    train_users, _ = split_users(ds.events.users(), valid_share, seed)
    spec = fit_spec(ds.events.filter_users(train_users), fit or FitConfig(), labels, utc_offset_ms=ds.utc_offset_ms)
    samples = featurize(ds, spec) if featurize else build_samples(ds.events, spec, ds.decisions)
    in_train = np.isin(samples.user_id, train_users)
    train_idx, valid_idx = np.flatnonzero(in_train), np.flatnonzero(~in_train)
    if len(train_idx) == 0 or len(valid_idx) == 0:
        raise DataError(f"{ds.name}: too few decision points to split by user ({len(samples)})")
    return Prepared(spec, samples, train_idx, valid_idx, ds.events)


@dataclass
class Fold:
    """One fold of :func:`cross_fit`: the other users prepared for training, this fold's users as test samples."""

    index: int
    prepared: Prepared
    test: Samples


def cross_fit(ds: Dataset, folds: int, seed: int, valid_share: float, fit: FitConfig | None = None) -> Iterator[Fold]:
    """K-fold cross-fitting by user: each fold's users are held out of everything (the spec fit, training,
    early stopping) and featurized with the spec the other users fit, so every user is a test user once."""
    users = np.random.default_rng(seed).permutation(np.sort(ds.events.users()))
    if not 2 <= folds <= len(users) // 2:
        raise ConfigError(f"folds must be in [2, {len(users) // 2}] for {len(users)} users, got {folds}")
    for k, test_users in enumerate(np.array_split(users, folds)):
        rest = ds.with_users(np.sort(np.setdiff1d(users, test_users)))
        prep = prepare(rest, seed, valid_share, fit)
        held = ds.with_users(np.sort(test_users))
        yield Fold(k, prep, build_samples(held.events, prep.spec, held.decisions))


def main_task(tasks: tuple[str, ...]) -> str:
    return "buy_rt" if "buy_rt" in tasks else tasks[0]





def _pos_weights(cfg: TrainConfig, model, samples: Samples, idx: np.ndarray) -> dict[str, float]:
    if cfg.pos_weight == "none" or getattr(model, "shift_logit", None) is None:
        return {t: 1.0 for t in model.tasks}
    out = {}
    for t in model.tasks:
        obs = samples.observed[t][idx]
        y = samples.labels[t][idx][obs]
        pos = max(int(y.sum()), 1)
        neg = max(len(y) - pos, 1)
        w = neg / pos if cfg.pos_weight == "auto" else float(cfg.pos_weight)
        out[t] = float(min(max(w, 1.0), cfg.max_pos_weight))
    return out


@dataclass(frozen=True)
class Replica:
    """How one process computes each global batch: cut into ``parts`` contiguous slices (a forward and
    backward pass each, the gradients accumulated), of which this replica (rank ``rank`` of ``world``, e.g.
    a Ray Train worker under DDP) takes its ``parts / world`` consecutive ones. Every slice's loss is
    normalised by the whole batch's observed labels and scaled by ``world`` (DDP averages), so the summed
    gradient is the batch's. ``Replica()`` is plain single-process training."""

    rank: int = 0
    world: int = 1
    parts: int = 1

    def __post_init__(self) -> None:
        if self.parts < 1 or self.world < 1 or self.parts % self.world or not 0 <= self.rank < self.world:
            raise ConfigError(f"micro-batches ({self.parts}) must be a positive multiple of the workers ({self.world})")

    def slices(self, n: int) -> list[tuple[int, int]]:
        """Rows ``[first, end)`` of each of this replica's slices of a batch of ``n`` rows."""
        per = self.parts // self.world
        cuts = [n * k // self.parts for k in range(self.parts + 1)]
        return [(cuts[k], cuts[k + 1]) for k in range(self.rank * per, (self.rank + 1) * per)]

    def total(self, value: float) -> float:
        """``value`` summed over the replicas."""
        if self.world == 1:
            return value
        t = torch.tensor(value, dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t)


class EarlyStopping:
    """Keep the weights of the best validation score; stop after ``patience`` epochs without a gain of
    more than ``min_delta``. ``update`` returns True when training should stop; ``restore`` loads the best.
    An epoch that is not ``feasible`` (it breaks a condition the model declares, see ``train_torch``) is no
    gain; it is kept only while no feasible epoch has been seen."""

    def __init__(self, patience: int, min_delta: float = 1e-5) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best_score, self.best_epoch, self.bad, self.state = -math.inf, 0, 0, None
        self.best_feasible = False

    def update(self, model: torch.nn.Module, score: float, epoch: int, feasible: bool = True) -> bool:
        gain = score > self.best_score + self.min_delta
        # ordered by (feasible, score): meeting the condition first, then the validation score
        better = feasible > self.best_feasible or (feasible == self.best_feasible and gain)
        if self.state is None or better:
            self.best_score, self.best_epoch, self.bad, self.best_feasible = score, epoch, 0, feasible
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        model.load_state_dict(self.state)


def train_torch(
    model: torch.nn.Module, prep: Prepared, cfg: TrainConfig, on_epoch: Callable[[dict], None] | None = None,
    replica: Replica | None = None, net: torch.nn.Module | None = None,
) -> tuple[list[dict], int]:
    """Train ``model`` in place; ``net`` is the module that runs the forward pass (``model`` wrapped in
    DDP under data parallelism), ``replica`` this process's share of each batch (default: all of it, in
    ``cfg.micro_batches`` slices)."""
    net = net or model
    replica = replica or Replica(parts=cfg.micro_batches)
    samples, tr, va = prep.samples, prep.train_idx, prep.valid_idx
    tasks = model.tasks
    mt = getattr(model, "selection_task", None) or main_task(tasks)
    weights = dict(cfg.task_weights)
    pos_w = _pos_weights(cfg, model, samples, tr)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    labels = {t: torch.from_numpy(samples.labels[t].astype(np.float32)) for t in tasks}
    observed = {t: torch.from_numpy(samples.observed[t].astype(np.float32)) for t in tasks}
    stop = EarlyStopping(cfg.patience)
    check = getattr(model, "epoch_condition", None)  # logits of the training + validation rows → (holds, measured)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = rng.permutation(tr)
        total, n_batches = 0.0, 0
        for lo in range(0, len(order), cfg.batch_size):
            idx = np.sort(order[lo : lo + cfg.batch_size])
            if len(idx) < 2 * replica.parts:  # a lone last row: batch statistics (IIDN's BatchNorm) need two
                continue
            batch = batch_for(model, samples, idx)
            denom = {t: observed[t][torch.from_numpy(idx)].sum().clamp(min=1.0) for t in tasks}
            opt.zero_grad()
            batch_loss = 0.0
            slices = replica.slices(len(idx))
            noise = torch.get_rng_state()  # every slice draws from the same state: the batch's id_dropout noise
            for k, (first, end) in enumerate(slices):
                torch.set_rng_state(noise)
                token = BATCH_ROWS.set((first, end, len(idx)) if replica.parts > 1 else None)
                sync = contextlib.nullcontext() if k == len(slices) - 1 or net is model else net.no_sync()
                try:
                    with sync:
                        out = net({n: v[first:end] for n, v in batch.items()} if replica.parts > 1 else batch)
                        ti = torch.from_numpy(idx[first:end])
                        loss = torch.zeros(())
                        for t in tasks:
                            y, m = labels[t][ti], observed[t][ti]
                            per = torch.nn.functional.binary_cross_entropy_with_logits(
                                out[t], y, pos_weight=torch.tensor(pos_w[t]), reduction="none"
                            )
                            loss = loss + weights.get(t, 1.0) * (per * m).sum() / denom[t]
                        aux = model.aux_loss(out) if hasattr(model, "aux_loss") else None
                        if aux is not None:  # a model's own term on its outputs (AITM's calibrator), a mean
                            loss = loss + aux * ((end - first) / len(idx))  # over the slice: the batch's share
                        # DDP averages over the replicas: scaled by their number, the sum is the batch's gradient
                        (loss * replica.world).backward()
                finally:
                    BATCH_ROWS.reset(token)
                batch_loss += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += replica.total(batch_loss)
            n_batches += 1
        logits = predict_logits(model, samples, va)
        obs = samples.observed[mt][va]
        auc = M.auc(samples.labels[mt][va][obs], logits[mt][obs])
        row = {"epoch": epoch, "loss": total / max(n_batches, 1), "valid_auc": auc, "seconds": time.perf_counter() - t0}
        feasible = True
        if check is not None:  # the model's condition on the rows it trains and validates on (AITM: the funnel's order)
            seen = predict_logits(model, samples, tr)
            feasible, row["condition"] = check({t: np.concatenate([seen[t], logits[t]]) for t in seen})
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if stop.update(model, auc, epoch, feasible):
            break
    stop.restore(model)
    for t, w in pos_w.items():
        if w != 1.0:
            model.shift_logit(t, -math.log(w))  # prior correction: calibrated probabilities again
    model.eval()
    return history, stop.best_epoch


def train(
    name: str,
    ds: Dataset,
    cfg: TrainConfig | None = None,
    streams: tuple[str, ...] | None = None,
    tasks: tuple[str, ...] | None = None,
    options: dict | None = None,
    fit: FitConfig | None = None,
    prepared: Prepared | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    run_torch: Callable[..., tuple[list[dict], int]] = train_torch,
) -> TrainResult:
    """Train registered model ``name`` on ``ds`` (or on ``prepared`` samples, to share featurization);
    ``run_torch(model, prepared, cfg, on_epoch)`` trains a torch model (an engine's runner, e.g. Ray Train)."""
    cfg = cfg or TrainConfig()
    entry = get_entry(name)
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    prep = prepared or prepare(ds, cfg.seed, cfg.valid_share, fit)
    streams = tuple(streams or prep.spec.streams)
    torch.manual_seed(cfg.seed)
    model = create_model(name, prep.spec, streams=streams, tasks=tasks, **(options or {}))
    history, best = [], 0
    if entry.trainer:  # the model's own training (find: self-supervised pretraining + alignment)
        if run_torch is not train_torch:
            raise ConfigError(f"{name} trains with its own loop ({entry.trainer}), in this process only: use --engine local")
        history, best = importlib.import_module(entry.trainer).fit(model, prep, cfg, on_epoch)
    elif entry.kind == "torch":
        history, best = run_torch(model, prep, cfg, on_epoch)
    else:
        model.fit(prep.samples.take(prep.train_idx), prep.samples.take(prep.valid_idx), seed=cfg.seed)
    logits = predict_logits(model, prep.samples, prep.valid_idx)
    return TrainResult(model, prep, history, best, time.perf_counter() - t0, logits)


def own_summary(model, samples: Samples, idx: np.ndarray, seed: int = 0) -> dict:
    """What a model with its own trainer adds to the train summary and to ``eval`` (its module's ``summary``;
    ``find``: linear probes of the embedding), else nothing."""
    entry = get_entry(model.registry_name)
    mod = importlib.import_module(entry.trainer) if entry.trainer else None
    return mod.summary(model, samples, idx, seed) if mod is not None and hasattr(mod, "summary") else {}


def evaluate_funnel(samples: Samples, idx: np.ndarray, logits: dict[str, np.ndarray], n_boot: int = 200, seed: int = 0) -> dict | None:
    """Per-step funnel metrics (``training.funnel``) when the tasks form a funnel, else None."""
    tasks = tuple(logits)
    if not is_funnel(tasks):
        return None
    return funnel_report(tasks, {k: v[idx] for k, v in samples.labels.items()},
                         {k: v[idx] for k, v in samples.observed.items()}, logits,
                         groups=samples.user_id[idx], n_boot=n_boot, seed=seed)  # fmt: skip


def evaluate_logits(samples: Samples, idx: np.ndarray, logits: dict[str, np.ndarray], n_boot: int = 200, seed: int = 0) -> dict:
    """Metrics per task on ``samples[idx]`` (observed labels only), bootstrap CIs over users."""
    return M.report(
        {t: samples.labels[t][idx] for t in logits},
        {t: sigmoid(v) for t, v in logits.items()},
        {t: samples.observed[t][idx] for t in logits},
        groups=samples.user_id[idx],
        n_boot=n_boot,
        seed=seed,
    )


# ---------------------------------------------------------------------------------------------
# Golden set and bundle
# ---------------------------------------------------------------------------------------------


def model_weights(model) -> dict[str, np.ndarray]:
    if isinstance(model, torch.nn.Module):
        return {k: v.detach().cpu().contiguous().numpy() for k, v in model.state_dict().items()}
    return model.state()


def model_size(model) -> tuple[int, int]:
    """(parameters, bytes of weights)."""
    w = model_weights(model)
    if isinstance(model, torch.nn.Module):
        return count_parameters(model), sum(p.numel() * p.element_size() for p in model.parameters())
    return sum(int(v.size) for v in w.values()), sum(int(v.nbytes) for v in w.values())


def bundle_config(result: TrainResult, cfg: TrainConfig, source: str, fit: FitConfig | None) -> dict:
    return {
        "model": model_config(result.model),
        "kind": get_entry(result.model.registry_name).kind,
        "train": asdict(cfg),
        "fit": asdict(fit or FitConfig()),
        "data": {"source": source, "train_samples": int(len(result.prepared.train_idx)),
                 "valid_samples": int(len(result.prepared.valid_idx))},
        "best_epoch": result.best_epoch,
        "versions": {"edgeintent": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }  # fmt: skip


def train_bundle(
    name: str,
    source: str,
    out,
    cfg: TrainConfig | None = None,
    streams: tuple[str, ...] | None = None,
    tasks: tuple[str, ...] | None = None,
    options: dict | None = None,
    fit: FitConfig | None = None,
    overwrite: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    prepared: Prepared | None = None,
    ds: Dataset | None = None,
    run_torch: Callable[..., tuple[list[dict], int]] = train_torch,
) -> dict:
    """Train ``name`` on ``source`` and write a verified bundle to ``out``; returns the summary."""
    from edgeintent.toolkit.bundle import golden_bytes, write_bundle
    from edgeintent.toolkit.data.sources import load_source

    cfg = cfg or TrainConfig()
    ds = ds or (None if prepared is not None else load_source(source))
    result = train(name, ds, cfg, streams=streams, tasks=tasks, options=options, fit=fit, prepared=prepared,
                   on_epoch=on_epoch, run_torch=run_torch)  # fmt: skip
    prep = result.prepared
    metrics = evaluate_logits(prep.samples, prep.valid_idx, result.valid_logits, seed=cfg.seed)
    funnel = evaluate_funnel(prep.samples, prep.valid_idx, result.valid_logits, seed=cfg.seed)
    funnel = {} if funnel is None else {"funnel": funnel}
    params, size = model_size(result.model)
    summary = {
        "model": result.model.registry_name,
        "streams": list(result.model.streams),
        "tasks": list(result.model.tasks),
        "parameters": params,
        "weight_bytes": size,
        "train_seconds": round(result.seconds, 2),
        "best_epoch": result.best_epoch,
        "history": result.history,
        "valid": metrics,
        **funnel,
        **own_summary(result.model, prep.samples, prep.valid_idx, cfg.seed),
    }
    events = prep.events if prep.events is not None else (ds.events if ds is not None else None)
    extra = {}
    if events is not None:  # the raw events behind golden decision points (what a phone-side featurizer replays)
        raw = build_golden_events(events, prep.spec, prep.samples, prep.valid_idx, cfg.golden_rows, cfg.seed)
        extra[GOLDEN_EVENTS] = golden_bytes(raw, GOLDEN_EVENTS)
    write_bundle(out, bundle_config(result, cfg, source, fit), model_weights(result.model), prep.spec,
                 build_golden(result.model, prep.spec, prep.samples, prep.valid_idx, cfg.golden_rows, cfg.seed), summary,
                 extra_files=extra, overwrite=overwrite)  # fmt: skip
    return summary


def evaluation_rows(bundle, model, source: str | None = None, users: str = "auto") -> tuple[Samples, np.ndarray, str, str]:
    """(samples, rows to evaluate, source, users) for a bundle: by default the training source's
    validation users; another source is evaluated on all its users."""
    from edgeintent.toolkit.data.sources import load_source

    trained_on = bundle.config["data"]["source"]
    source = source or trained_on
    ds = load_source(source)
    samples = build_samples(ds.events, bundle.spec, ds.decisions, streams=list(model.streams))
    if users == "auto":
        users = "valid" if source == trained_on else "all"
    if users == "valid":
        tcfg = bundle.config["train"]
        _, valid_users = split_users(ds.events.users(), tcfg["valid_share"], tcfg["seed"])
        idx = np.flatnonzero(np.isin(samples.user_id, valid_users))
    elif users == "all":
        idx = np.arange(len(samples))
    else:
        raise ConfigError(f"--users must be auto, valid or all, got {users!r}")
    if len(idx) == 0:
        raise DataError(f"{source}: no decision points to evaluate on")
    return samples, idx, source, users


def evaluate_bundle(path, source: str | None = None, users: str = "auto", plot=None) -> dict:
    """Metrics of a bundle's model on ``source`` (default: the training source's validation users)."""
    from edgeintent.toolkit.bundle import load_bundle, load_model

    bundle = load_bundle(path)
    model = load_model(bundle)
    samples, idx, source, users = evaluation_rows(bundle, model, source, users)
    logits = predict_logits(model, samples, idx)
    report = evaluate_logits(samples, idx, logits)
    funnel = evaluate_funnel(samples, idx, logits)
    if plot is not None:
        obs = {t: samples.observed[t][idx] for t in logits}
        M.plot_roc_calibration(
            {t: samples.labels[t][idx][obs[t]] for t in logits}, {t: sigmoid(v)[obs[t]] for t, v in logits.items()}, plot
        )
    return {"bundle": str(path), "model": bundle.config["model"]["name"], "data": source, "users": users,
            "samples": int(len(idx)), "tasks": report, **({"funnel": funnel} if funnel else {}),
            **own_summary(model, samples, idx)}  # fmt: skip
