from __future__ import annotations

from pathlib import Path

import pytest

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
