"""``train --engine ray --workers N``: the toolkit's training loop under Ray Train's ``TorchTrainer``.

The driver splits users, fits the FeatureSpec on the training users (one machine), featurizes with the
Ray engine into a Parquet samples data set, and builds the model. Each of the N workers (gloo, CPU)
reads that data set, rebuilds the same model from the same seed and RNG state, wraps it in DDP and runs
:func:`~edgeintent.toolkit.training.trainer.train_torch` as replica ``rank`` of ``N``: every global batch
is the single-process batch, each worker computes a contiguous slice of it
(:class:`~edgeintent.toolkit.training.trainer.Replica`). Rank 0 hands the weights back as a Ray Train
checkpoint; the driver writes an ordinary bundle from them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from edgeintent.engines.featurize import EngineOptions, build_samples_dir, read_samples_dir
from edgeintent.engines.session import deadline, ray_session
from edgeintent.errors import ConfigError, EngineError
from edgeintent.toolkit.features.windows import samples_from_table
from edgeintent.toolkit.models import model_config, rebuild_model
from edgeintent.toolkit.training.trainer import Prepared, Replica, TrainConfig, train_torch

WEIGHTS = "weights.safetensors"


def check_workers(cfg: TrainConfig, workers: int) -> None:
    """A one-line ConfigError unless ``workers`` can share ``cfg``'s batches (before any work starts)."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    Replica(0, workers, cfg.micro_batches)  # micro-batches must be a multiple of the workers
    if cfg.batch_size < 2 * cfg.micro_batches:
        raise ConfigError(f"a batch of {cfg.batch_size} rows cannot be cut into {cfg.micro_batches} slices of two rows")


def ray_torch_runner(samples_dir: str | Path, workers: int, num_cpus: int = 4, timeout_s: float | None = None,
                     storage: str | Path | None = None) -> Callable:  # fmt: skip
    """A ``run_torch(model, prep, cfg, on_epoch) -> (history, best_epoch)`` for
    :func:`~edgeintent.toolkit.training.trainer.train` that trains on ``workers`` Ray Train workers.
    ``prep`` must hold the rows of ``samples_dir`` in :func:`read_samples_dir`'s order."""

    def run(model: torch.nn.Module, prep: Prepared, cfg: TrainConfig, on_epoch=None) -> tuple[list[dict], int]:
        check_workers(cfg, workers)
        ray_session(num_cpus)
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        config = {
            "samples_dir": str(samples_dir),
            "model": model_config(model),
            "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "rng": torch.get_rng_state(),
            "train": asdict(cfg),
            "train_idx": prep.train_idx,
            "valid_idx": prep.valid_idx,
        }
        with tempfile.TemporaryDirectory(prefix="edgeintent-raytrain-", dir=storage) as store:
            trainer = TorchTrainer(
                _worker_loop,
                train_loop_config=config,
                torch_config=TorchConfig(backend="gloo"),
                scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
                run_config=RunConfig(storage_path=store, name="train"),
            )
            with deadline(timeout_s, "the ray training job"):
                result = trainer.fit()  # a worker's failure is a bug: Ray Train raises it with its traceback
            if result.checkpoint is None:
                raise EngineError("ray training returned no checkpoint from rank 0")
            with result.checkpoint.as_directory() as ckpt:
                from safetensors.torch import load_file

                model.load_state_dict(load_file(str(Path(ckpt) / WEIGHTS)))
            history, best = result.metrics["history"], int(result.metrics["best_epoch"])
        if on_epoch:
            for row in history:
                on_epoch(row)
        model.eval()
        return history, best

    return run


def _worker_loop(config: dict) -> None:
    """One Ray Train worker: the same model, data and batches as the driver's; its slice of each batch."""
    import ray.train
    from ray.train import Checkpoint
    from safetensors.torch import save_file

    ctx = ray.train.get_context()
    cfg = TrainConfig(**{k: tuple(map(tuple, v)) if k == "task_weights" else v for k, v in config["train"].items()})
    torch.set_num_threads(cfg.threads)
    table, spec = read_samples_dir(config["samples_dir"])
    samples = samples_from_table(table, spec)
    prep = Prepared(spec, samples, np.asarray(config["train_idx"]), np.asarray(config["valid_idx"]))
    model = rebuild_model(config["model"], spec)
    model.load_state_dict(config["state"])
    torch.set_rng_state(config["rng"])
    net = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})
    history, best = train_torch(model, prep, cfg, replica=Replica(ctx.get_world_rank(), ctx.get_world_size(), cfg.micro_batches), net=net)
    metrics = {"history": history, "best_epoch": best}
    if ctx.get_world_rank() == 0:
        with tempfile.TemporaryDirectory() as tmp:
            state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
            save_file(state, str(Path(tmp) / WEIGHTS))
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics)


def train_bundle_on_ray(name: str, source: str, out: str | Path, cfg: TrainConfig, workers: int, *, buckets: int = 16,
                        num_cpus: int = 4, timeout_s: float | None = None, **kwargs) -> dict:  # fmt: skip
    """:func:`~edgeintent.toolkit.training.trainer.train_bundle` with featurization on Ray Data and training
    on ``workers`` Ray Train workers; the samples data set lives in a temp directory beside ``out``."""
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.training.trainer import prepare, train_bundle

    check_workers(cfg, workers)
    ds = load_source(source)
    with tempfile.TemporaryDirectory(prefix=".edgeintent-samples-", dir=Path(out).parent) as tmp:
        samples_dir = Path(tmp) / "samples"

        def featurize(ds, spec):
            build_samples_dir(ds, spec, samples_dir, "ray", EngineOptions(buckets, num_cpus, timeout_s=timeout_s))
            table, _ = read_samples_dir(samples_dir)
            return samples_from_table(table, spec)

        prep = prepare(ds, cfg.seed, cfg.valid_share, kwargs.get("fit"), featurize=featurize)
        runner = ray_torch_runner(samples_dir, workers, num_cpus, timeout_s, storage=tmp)
        return train_bundle(name, source, out, cfg, prepared=prep, run_torch=runner, **kwargs)
