"""The fuzz suite's child process: ``python tests/fuzz_worker.py``.

It reads one JSON request per line on stdin (``{"kind": ..., "path": ...}`` or ``{"kind": "cli",
"argv": [...]}``), runs what a user's command would run on that input, and answers one JSON line on
the stdout it was started with (library output goes to stderr): ``{"status": "ok"}``,
``{"status": "refused", "type": ..., "message": ...}`` for an ``EdgeIntentError``, or ``{"status":
"bug", ...}`` for anything else (a traceback the user would have seen, or a RuntimeWarning printed
at them). Native crashes kill this process; the test that sent the input sees that and saves it.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from pathlib import Path


def _events(path: str) -> None:
    from edgeintent.toolkit.data.sources import load_source
    from edgeintent.toolkit.features import build_samples, fit_spec
    from edgeintent.toolkit.features.inspect import inspect_dataset

    ds = load_source(path)
    inspect_dataset(ds)
    spec = fit_spec(ds.events)
    build_samples(ds.events, spec, ds.decisions)


_LOG = None


def _spec(path: str) -> None:
    from edgeintent.toolkit.features import FeatureSpec, build_samples

    global _LOG
    spec = FeatureSpec.load(path)
    if _LOG is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.helpers import random_log

        _LOG = random_log(5, users=4, events_per_user=10)
    build_samples(_LOG, spec)


def _bundle(path: str) -> None:
    from edgeintent.exporters import exported_artifacts, load_runner
    from edgeintent.toolkit.bundle import load_bundle, load_model
    from edgeintent.toolkit.golden import golden_samples
    from edgeintent.toolkit.models.exportable import feeds

    bundle = load_bundle(path)
    model = load_model(bundle)
    f = feeds(model, golden_samples(bundle.golden))
    for meta in exported_artifacts(bundle, ["onnx", "mnn"]):
        load_runner(bundle, meta).run(f)


def _cli(argv: list[str]) -> dict:
    from click.testing import CliRunner

    from edgeintent.cli import main

    res = CliRunner().invoke(main, argv)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        exc = res.exception
        return {"status": "bug", "type": type(exc).__name__, "message": str(exc)[:500],
                "traceback": "".join(traceback.format_exception(exc))[-3000:]}  # fmt: skip
    text = res.output.strip()
    if res.exit_code == 2:
        return {"status": "refused", "type": "usage", "message": text[-2000:]}
    return {"status": "ok" if res.exit_code == 0 else "failed", "exit_code": res.exit_code, "message": text[-500:]}


KINDS = {"events": _events, "spec": _spec, "bundle": _bundle}


def handle(req: dict) -> dict:
    from edgeintent.errors import EdgeIntentError

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a warning printed at the user is a bug here
        try:
            if req["kind"] == "cli":
                return _cli(req["argv"])
            KINDS[req["kind"]](req["path"])
            return {"status": "ok"}
        except EdgeIntentError as exc:
            return {"status": "refused", "type": type(exc).__name__, "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - every other exception is what this suite looks for
            return {"status": "bug", "type": type(exc).__name__, "message": str(exc)[:500],
                    "traceback": traceback.format_exc()[-3000:]}  # fmt: skip


def main() -> None:
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the libraries print goes to stderr, not into the replies
    sys.stdout = sys.stderr
    reply.write(json.dumps({"status": "ready"}) + "\n")
    for line in sys.stdin:
        reply.write(json.dumps(handle(json.loads(line))) + "\n")


if __name__ == "__main__":
    main()
