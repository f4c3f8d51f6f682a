from __future__ import annotations

import os
from pathlib import Path

import pytest

#: the slowest test files, run first so that the test workers (``-n auto --dist loadfile``) finish
#: together: longest first; every other file keeps its place
SLOW_FIRST = ("test_export.py", "test_quantize.py", "test_aitm.py", "test_parity.py", "test_find.py", "test_executorch.py",
              "test_litert.py", "test_kill.py", "test_engines.py", "test_mil_optests.py", "test_emulation.py", "test_cli.py",
              "test_kit.py", "test_deterministic.py", "test_bench.py")  # fmt: skip


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests stay together


#: the source every test bundle is trained on unless a test says otherwise
SRC = "sim:400:3"


@pytest.fixture(scope="session")
def prepared_source():
    """``(source, seed, valid_share) -> prepared`` split, loaded once per session (never mutate it)."""
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.training.trainer import prepare

    cache: dict = {}

    def get(source: str = SRC, seed: int = 0, valid_share: float = 0.2):
        key = (source, seed, valid_share)
        if key not in cache:
            cache[key] = prepare(load_source(source), seed, valid_share)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def trained(tmp_path_factory, prepared_source):
    """``trained(name, cfg=None, source=SRC, options=None, streams=None) -> Path``: a bundle trained once per session
    for each distinct request (default config: one epoch, 24 golden rows). Never change it: copy it
    first (``shutil.copytree``)."""
    import json

    from edgeintent.toolkit.training.trainer import TrainConfig, train_bundle

    root = tmp_path_factory.mktemp("trained")
    cache: dict = {}
    summaries: dict[Path, dict] = {}

    def get(name: str, cfg: TrainConfig | None = None, source: str = SRC, options: dict | None = None,
            streams: tuple[str, ...] | None = None) -> Path:
        cfg = cfg or TrainConfig(epochs=1, batch_size=128, patience=1, golden_rows=24)
        key = (name, source, json.dumps(cfg.__dict__, sort_keys=True), json.dumps(options or {}, sort_keys=True), streams)
        if key not in cache:
            path = root / f"{name}-{len(cache)}"
            prep = prepared_source(source, cfg.seed, cfg.valid_share)
            summaries[path] = train_bundle(name, source, path, cfg, options=options, prepared=prep, streams=streams)
            cache[key] = path
        return cache[key]

    get.summaries = summaries  # path -> the summary train_bundle returned
    return get


#: the config of the briefly trained bundles (two epochs, 24 golden rows)
BRIEF = dict(epochs=2, batch_size=128, patience=2, golden_rows=24)


@pytest.fixture(scope="session")
def brief_bundles(trained) -> dict[str, Path]:
    """dipn and iidn trained for two epochs on ``SRC``, nothing exported (the parity and cpu-arm
    tests share them). Never change them: copy first."""
    from edgeintent.toolkit.training.trainer import TrainConfig

    return {name: trained(name, TrainConfig(**BRIEF)) for name in ("dipn", "iidn")}


@pytest.fixture(scope="session")
def arm_env():
    """The built cpu-arm environment (``devices setup cpu-arm``, idempotent, cached and locked: the test
    files that use it may run on two workers at once); skips only when it cannot be built here (not root,
    apt or PyPI unreachable) or with ``EDGEINTENT_ARM_TESTS=0``."""
    from edgeintent.errors import EmulationError
    from edgeintent.runtimes import emulation

    if os.environ.get("EDGEINTENT_ARM_TESTS") == "0":
        pytest.skip("EDGEINTENT_ARM_TESTS=0")
    try:
        emulation.setup()
        return emulation.environment()
    except EmulationError as err:
        if err.reason in ("root", "network"):
            pytest.skip(f"cpu-arm environment cannot be built here: {err}")
        raise


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TAOBAO_CSV = SHARED_DATA / "taobao_userbehavior" / "UserBehavior_sample.csv"
HMOG_DIR = SHARED_DATA / "hmog"


@pytest.fixture(scope="session")
def taobao_csv() -> Path:
    if not TAOBAO_CSV.exists():
        pytest.skip(f"real Taobao sample not found at {TAOBAO_CSV}")
    return TAOBAO_CSV


@pytest.fixture(scope="session")
def hmog_dir() -> Path:
    if not HMOG_DIR.exists():
        pytest.skip(f"real HMOG data not found at {HMOG_DIR}")
    return HMOG_DIR


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray session for the whole run: 4 logical CPUs (Ray Data and Ray Train must not starve each
    other on a 2-core machine), state under a short temp dir, no dashboard, no usage statistics, token
    authentication off (edgeintent.engines.session). Jobs take a time limit (``timeout_s``)."""
    import importlib.util
    import tempfile

    if importlib.util.find_spec("ray") is None:  # not imported here: ray_session sets its environment first
        pytest.skip("Ray is the [ray] extra; `make setup` installs it")

    from edgeintent.engines.session import ray_session

    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay under 107 characters
    ray = ray_session(num_cpus=4, temp_dir=temp)
    yield ray
    ray.shutdown()
    import shutil

    shutil.rmtree(temp, ignore_errors=True)
