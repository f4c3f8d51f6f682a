"""``edgeintent features``: fit a FeatureSpec and build model inputs (the features floor's commands)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from edgeintent.cli.common import check_out_dir, console, lazy_option, main, print_json, words
from edgeintent.errors import ConfigError


def engine_help() -> str:
    """``features build --engine`` / ``train --engine`` help, from the engines registry."""
    from edgeintent.engines.featurize import ENGINES

    return f"{words(ENGINES.names())}: this process or Ray (docs/engines.md)"


@main.group()
def features() -> None:
    """Fit a FeatureSpec and turn events into model inputs."""


@features.command("fit")
@click.argument("source")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="spec.json to write")
@click.option("--min-count", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--buckets", type=click.IntRange(1, 1000), default=16, show_default=True)
@click.option("--max-len", "max_len", default="gesture=50,click=20,cloud=20", show_default=True,
              help="events kept per stream before each decision point")
@click.option("--json", "as_json", is_flag=True)
def features_fit(source: str, out: Path, min_count: int, buckets: int, max_len: str, as_json: bool) -> None:
    """Fit vocabularies, bucket edges and hash sizes on SOURCE and save them as versioned JSON."""
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import FitConfig, fit_spec

    cfg = FitConfig(max_len=_parse_max_len(max_len), min_count=min_count, n_buckets=buckets)
    ds = load_source(source)
    spec = fit_spec(ds.events, cfg, utc_offset_ms=ds.utc_offset_ms)
    check_out_dir(out)
    spec.save(out)
    summary = {
        "spec": str(out),
        "streams": {s: {"features": len(spec.features[s]), "max_len": spec.max_len[s],
                        "cardinalities": spec.cardinalities(s)} for s in spec.streams},
    }
    if as_json:
        print_json(summary)
    else:
        for s, info in summary["streams"].items():
            console.print(f"{s}: {info['features']} features, max_len {info['max_len']}, "
                          f"ids {info['cardinalities']}")
        console.print(f"wrote {out}")


@features.command("build")
@click.argument("source")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="a samples .npz, or a directory: a sharded Parquet samples data set (docs/engines.md)")
@lazy_option("--engine", default="local", show_default=True, help=engine_help)
@click.option("--buckets", type=click.IntRange(min=1), default=16, show_default=True,
              help="user buckets (fmix64(user_id) mod B) of the Parquet data set")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="time limit of a Ray job in seconds")
@click.option("--shuffle-budget-mb", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Ray: MB of rows one group-by shuffle may hold; more runs in waves (default: half the object store)")
@click.option("--overwrite", is_flag=True, help="replace an existing samples data set")
@click.option("--json", "as_json", is_flag=True)
def features_build(source: str, spec_path: Path, out: Path, engine: str, buckets: int, timeout_s: float | None,
                   shuffle_budget_mb: float | None, overwrite: bool, as_json: bool) -> None:  # fmt: skip
    """Featurize SOURCE at its decision points into padded id arrays, lengths and labels."""
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import FeatureSpec, build_samples, save_samples

    spec = FeatureSpec.load(spec_path)
    check_out_dir(out)
    if out.suffix == ".npz" and engine != "local":
        raise ConfigError(f"--engine {engine} writes a Parquet data set: give --out a directory, not {out.name}")
    if out.suffix != ".npz":
        from edgeintent.engines.featurize import EngineOptions, build_samples_dir

        budget = int(shuffle_budget_mb * 2**20) if shuffle_budget_mb else None
        opts = EngineOptions(buckets=buckets, timeout_s=timeout_s, shuffle_budget_bytes=budget)
        summary = build_samples_dir(source, spec, out, engine, opts, overwrite)
        if as_json:
            print_json(summary)
        else:
            console.print(f"{summary['samples']:,} samples from {summary['events']:,} events on {engine}, "
                          f"{summary['files']} Parquet files, built in {summary['seconds']:.2f} s → {out}")  # fmt: skip
        return
    ds = load_source(source)
    t0 = time.perf_counter()
    samples = build_samples(ds.events, spec, ds.decisions)
    secs = time.perf_counter() - t0
    save_samples(samples, out)
    summary = {
        "samples": len(samples),
        "shapes": {s: list(v.shape) for s, v in samples.x.items()},
        "label_rates": {k: float(v.mean()) if len(v) else 0.0 for k, v in samples.labels.items()},
        "seconds": round(secs, 3),
        "out": str(out),
    }
    if as_json:
        print_json(summary)
    else:
        console.print(f"{len(samples):,} samples, shapes {summary['shapes']}, built in {secs:.2f} s → {out}")


def _parse_max_len(text: str) -> tuple[tuple[str, int], ...]:
    out = []
    for part in text.split(","):
        if not part.strip():
            continue
        name, _, n = part.partition("=")
        try:
            out.append((name.strip(), int(n)))
        except ValueError:
            raise ConfigError(f"--max-len expects stream=N pairs, got {part!r}") from None
    return tuple(out)
