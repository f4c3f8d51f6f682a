"""A pytest plugin that runs coremltools' own MIL op unit tests through the MIL reference executor.

coremltools ships its op tests in the wheel (``coremltools/converters/mil/mil/ops/tests/``). Each
builds a MIL program, converts it with ``ct.convert`` and hands the model to ``compare_backend``,
which on macOS runs it in CoreML and compares with the test's numpy expectation (elsewhere it does
nothing). This plugin replaces ``compare_backend`` with one that runs the saved ``.mlpackage`` in
:class:`~edgeintent.runtimes.mil_reference.MilProgram` and compares exactly as coremltools does
(shapes, then ``assert_allclose`` with coremltools' tolerances, widened for fp16 as coremltools
widens them), keeps the cases of the ops the reference implements (mlprogram, fp32 and fp16,
iOS15-17), samples them evenly over the test functions, and writes a JSON summary.

Tolerances: coremltools compares with atol 1e-4 / rtol 1e-5 on the CPU and widens them (x100, at
least 0.5 / 0.05) for fp16 precision. Its tests also build fp16-typed programs under "fp32 precision",
which CoreML's CPU executes in fp32; the reference executes fp16 programs in fp16 (it emulates the
phone), so every program that holds fp16 tensors is compared with coremltools' fp16 tolerances.

Used by tests/test_mil_optests.py in a child process (the selection depends on environment
variables coremltools reads at import time). Environment: ``EDGEINTENT_OPTESTS_OUT`` (summary
path), ``EDGEINTENT_OPTESTS_CASES`` (sample size, 0 = all).
"""

from __future__ import annotations

import json
import os
import re
import types
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

# the test classes of the ops the reference implements, per test file name (any iOS directory);
# "*" takes every class of the file (files that parametrise one class over many ops)
SELECT = {
    "test_activation.py": {"ReLU", "Sigmoid", "Softplus", "Softmax"},
    "test_control_flow.py": {"Select", "Cond", "WhileLoop", "List"},  # List: list ops, refused cleanly
    "test_elementwise_binary.py": {"*"},
    "test_elementwise_unary.py": {"*"},
    "test_linear.py": {"Linear", "MatMul"},
    "test_normalization.py": {"NormalizationBatchNorm"},
    "test_recurrent.py": {"GRU", "LSTM"},
    "test_reduction.py": {"*"},
    "test_scatter_gather.py": {"Scatter", "Gather", "GatherAlongAxis", "GatherNd"},
    "test_tensor_operation.py": {"BandPart", "Fill", "Range1d", "Tile", "Shape", "Identity", "Concat"},
    "test_tensor_transformation.py": {"ExpandDims", "Reshape", "SliceByIndex", "SliceBySize", "Squeeze",
                                      "Transpose", "Concat", "Split", "Stack"},
    "test_constexpr_ops.py": {"ConstexprAffineDequantize", "ConstexprCast", "ConstexprLutToDense"},
}  # fmt: skip
OPSETS = (15, 16, 17)
# test functions that check semantics the reference once got wrong: this many of their cases are
# taken before the round-robin, so every sample holds them
FOCUS = {"TestGRU::test_builder_to_backend_smoke": 24, "test_real_div_int_builder_to_backend": 4,
         "TestReshape::test_builder_to_backend_smoke": 8, "test_reshape_with_zero": 6,
         "TestScatter::test_ios17_invalid_indices": 8, "TestList::": 4}  # fmt: skip

_ran: dict[str, bool] = {}  # nodeid -> the reference ran (at least one compare_backend call)
_current: list[str] = [""]
_results: list[dict] = []


def test_root() -> Path:
    from coremltools.converters.mil.mil.ops import tests

    return Path(tests.__file__).parent


def test_args() -> list[str]:
    """pytest arguments naming the selected classes (``file::Class``; a whole file for "*") of the
    iOS14..iOS17 op-test files (iOS14's files hold the iOS15+ cases of ops that did not change)."""
    args = []
    for d in ("iOS14", "iOS15", "iOS16", "iOS17"):
        for p in sorted((test_root() / d).glob("test_*.py")):
            wanted = SELECT.get(p.name, set())
            if "*" in wanted:
                args.append(str(p))
            else:
                present = set(re.findall(r"^class Test(\w+)", p.read_text(), flags=re.M))
                args += [f"{p}::Test{c}" for c in sorted(wanted & present)]
    return args


def _reference_compare(mlmodel, input_key_values, expected_outputs, dtype="fp32", atol=1e-04, rtol=1e-05,
                       also_compare_shapes=True, state=None, allow_mismatch_ratio=0.0):  # fmt: skip
    """coremltools' ``compare_backend`` with the MIL reference in place of ``MLModel.predict``."""
    from coremltools.converters.mil.testing_utils import _get_coreml_out_from_dict

    from edgeintent.errors import MilReferenceError, MilRuntimeError
    from edgeintent.runtimes.mil_reference import MilProgram

    _ran[_current[0]] = True
    if state is not None:
        raise MilReferenceError("MIL reference: stateful programs are not implemented")
    feeds = {}
    for k, v in input_key_values.items():  # as coremltools' run_core_ml_predict
        if not isinstance(v, np.ndarray | np.generic | float | int):
            raise MilReferenceError(f"MIL reference: input {k} of type {type(v).__name__} (images are not implemented)")
        v = np.asarray(v)
        feeds[k] = v.astype(np.float32) if v.shape != () else np.array([v], dtype=np.float32)
    program = MilProgram(mlmodel.package_path)
    try:
        pred = program.run(feeds)
    except MilRuntimeError as exc:  # what CoreML raises when a program fails at run time
        raise RuntimeError(f"Unable to compute the prediction using ML Program: {exc}") from exc
    if dtype == "fp16" or "fp16" in program.dtypes:  # see the module docstring
        atol, rtol = max(atol * 100.0, 5e-1), max(rtol * 100.0, 5e-2)
    for name, expected in expected_outputs.items():
        out = np.asarray(_get_coreml_out_from_dict(pred, name))
        expected = np.asarray(expected)
        if also_compare_shapes and not (expected.shape == () and out.shape == (1,)):
            assert out.shape == expected.shape, f"Output: {name}. expected shape {expected.shape} != actual shape {out.shape}"
        np.testing.assert_allclose(out, expected, atol=atol, rtol=rtol)
    return pred


def pytest_configure(config):
    from coremltools.converters import _converters_entry
    from coremltools.converters.mil.mil.ops.tests import testing_utils

    testing_utils.compare_backend = _reference_compare
    # ct.convert ends with a full gc.collect(): 0.35 s a call in a process holding thousands of
    # collected cases, most of this run's time; skipping it changes memory use, not results
    _converters_entry.gc = types.SimpleNamespace(collect=lambda *a: 0)


def _keep(item) -> bool:
    path = Path(str(item.fspath))
    cls = item.cls.__name__.removeprefix("Test") if item.cls else ""
    wanted = SELECT.get(path.name, set())
    if "*" not in wanted and cls not in wanted:
        return False
    backend = getattr(getattr(item, "callspec", None), "params", {}).get("backend")
    if backend is None or getattr(backend, "backend", None) != "mlprogram":
        return False  # builder-only tests (PyMIL's value inference) and the neuralnetwork backend
    from edgeintent.runtimes.mil_reference import _ios_version

    return _ios_version(backend.opset_version) in OPSETS


def pytest_collection_modifyitems(session, config, items):
    """Keep the selected cases; with a sample size, take them round-robin over the test functions
    (each function's cases in a fixed pseudo-random order), so every function is represented."""
    kept = [i for i in items if _keep(i)]
    total = len(kept)
    n = int(os.environ.get("EDGEINTENT_OPTESTS_CASES", "0"))
    if n and n < total:
        groups = defaultdict(list)
        for it in sorted(kept, key=lambda i: zlib.crc32(i.nodeid.encode())):
            groups[it.nodeid.split("[")[0]].append(it)
        picked = []
        for key, k in FOCUS.items():
            for name, q in groups.items():
                if key in name:
                    picked += q[:k]
                    del q[:k]
        queues = list(groups.values())
        while len(picked) < n:
            for q in queues:
                if q and len(picked) < n:
                    picked.append(q.pop(0))
        kept = picked
    order = {id(i): k for k, i in enumerate(items)}
    items[:] = sorted(kept, key=lambda i: order[id(i)])
    config._optests_selected = total


def pytest_runtest_setup(item):
    _current[0] = item.nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "setup" and rep.skipped:
        _results.append({"id": item.nodeid, "kind": "not run", "detail": "skipped"})
    if rep.when != "call":
        return
    ran = _ran.get(item.nodeid, False)
    exc = call.excinfo
    from edgeintent.errors import MilReferenceError

    if not ran:
        kind = "not run"  # failed or skipped before a model reached compare_backend (e.g. macOS-only APIs)
    elif rep.passed:
        kind = "agreed"
    elif rep.skipped:
        kind = "not run"
    elif exc is not None and exc.errisinstance(MilReferenceError):
        kind = "refused"
    elif exc is not None and exc.errisinstance(AssertionError):
        kind = "mismatch"
    else:
        kind = "crash"
    detail = "" if exc is None else f"{exc.typename}: {str(exc.value).splitlines()[0] if str(exc.value) else ''}"[:300]
    _results.append({"id": item.nodeid, "kind": kind, "detail": detail})


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("EDGEINTENT_OPTESTS_OUT")
    if out:
        summary = {"selected": getattr(session.config, "_optests_selected", 0), "cases": _results}
        Path(out).write_text(json.dumps(summary, indent=1))
