"""coremltools' own MIL op unit tests, run through the MIL reference executor (tests/mil_optests_plugin.py).

A sample of their mlprogram cases (fp32 and fp16, iOS15-17) of the ops the reference implements:
every case whose model reaches the reference must agree with the test's expectation; the only
failure allowed is a one-line ``MilReferenceError`` (an op or variant it does not implement).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = 300  # the sample (of ~9,000 selected cases): ~25 CPU-s


@pytest.fixture(scope="module")
def optests(tmp_path_factory):
    from tests.mil_optests_plugin import test_args, test_root

    out = tmp_path_factory.mktemp("optests") / "summary.json"
    env = dict(os.environ, INCLUDE_MIL_FP32_UNIT_TESTS="1", RUN_BACKWARD_COMPATIBILITY="1", PYMIL_TEST_TARGETS="mlprogram",
               EDGEINTENT_OPTESTS_OUT=str(out), EDGEINTENT_OPTESTS_CASES=str(CASES))  # fmt: skip
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:warnings",
           "-p", "tests.mil_optests_plugin", "-c", os.devnull, "--rootdir", str(test_root()), *test_args()]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_the_reference_agrees_with_coremltools_op_tests(optests):
    cases = optests["cases"]
    kinds = Counter(c["kind"] for c in cases)
    print(f"coremltools op tests through the MIL reference: {len(cases)} of {optests['selected']} cases: {dict(kinds)}")
    assert len(cases) == CASES
    bad = [f"{c['kind']}: {c['id']}: {c['detail']}" for c in cases if c["kind"] in ("mismatch", "crash")]
    assert not bad, "\n".join(bad[:10])
    assert all(c["detail"].startswith("MilReferenceError: ") for c in cases if c["kind"] == "refused")
    assert kinds["agreed"] >= 0.6 * CASES  # the reference really ran (not a sample of refusals or skips)


@pytest.mark.parametrize("function, agreed", [
    ("TestGRU::test_builder_to_backend_smoke", 20),  # r, o, z stacking; reset before R_o; reverse
    ("test_real_div_int_builder_to_backend", 4),  # int / int stays int
    ("TestReshape::test_reshape_with_zero_different_len_iOS17", 1),  # iOS17: a 0 counts from the right
])  # fmt: skip
def test_the_fixed_kernels_ran_and_agreed(optests, function, agreed):
    hits = [c for c in optests["cases"] if function in c["id"]]
    assert sum(c["kind"] == "agreed" for c in hits) >= agreed, [(c["kind"], c["detail"]) for c in hits]


def test_list_ops_and_undefined_indices_are_clean_refusals(optests):
    lists = [c for c in optests["cases"] if "TestList::" in c["id"]]
    assert lists and all(c["kind"] == "refused" and "no kernel for op" in c["detail"] for c in lists)
    scatter = [c for c in optests["cases"] if "TestScatter::test_ios17_invalid_indices" in c["id"]]
    assert scatter and all(c["kind"] in ("agreed", "refused", "not run") for c in scatter)  # static: PyMIL refuses
    # validate_indices=True with dynamic indices: the program fails at run time, as the test expects
    assert any(c["kind"] == "agreed" and "validate_indices=True-dynamic=True" in c["id"] for c in scatter)
