from __future__ import annotations

from pathlib import Path

import pytest

#: the briefly trained dipn and iidn bundles that the parity and cpu-arm tests share (trained once)
BRIEF_SRC = "sim:400:3"


@pytest.fixture(scope="session")
def brief_bundles(tmp_path_factory) -> dict[str, Path]:
    """dipn and iidn trained for two epochs on ``BRIEF_SRC``, nothing exported. Never change them:
    copy first (``shutil.copytree``)."""
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.training.trainer import TrainConfig, prepare, train_bundle

    cfg = TrainConfig(epochs=2, batch_size=128, patience=2, golden_rows=24)
    root = tmp_path_factory.mktemp("brief")
    prep = prepare(load_source(BRIEF_SRC), cfg.seed, cfg.valid_share)
    out = {}
    for name in ("dipn", "iidn"):
        out[name] = root / name
        train_bundle(name, BRIEF_SRC, out[name], cfg, prepared=prep)
    return out

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
