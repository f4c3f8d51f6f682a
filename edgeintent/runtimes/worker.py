"""The aarch64 worker: a process that loads ONE exported artifact and answers run requests over pipes.

It runs on the emulated aarch64 python (``qemu-aarch64-static -L ROOT ROOT/usr/bin/python3``) where
only numpy and the runtimes (onnxruntime, MNN, ai-edge-litert) are installed, started as a script
(``python worker.py``): it then imports only its siblings ``sessions.py`` and ``litert_session.py`` (with
``fixed_shapes.py``), not edgeintent, not torch; a runtime is imported when an artifact opens. It also runs on the host python,
which is how the protocol is tested without emulation, and ``tests/test_emulation.py`` requires the
worker's outputs to be bit-identical with the host sessions' on the same artifact.

Protocol (stdin → requests, the original stdout → replies; fd 1 is pointed at stderr so the
runtimes' own prints, e.g. MNN's CPU-feature line, cannot corrupt a frame). A frame is
``>II`` (header length, payload length), a JSON header, then the payload bytes:

- first request: header ``{"op": "load", "kind": <a runtime name of KINDS>, "path",
  "precision", "threads", "inputs", "outputs"}``; reply ``{"ok": true, "runtime", "arch",
  "inputs", "outputs"}``;
- ``{"op": "run"}`` with an ``.npz`` of the feeds; reply ``{"ok": true}`` with an ``.npz`` of
  the outputs;
- ``{"op": "info"}``: reply ``{"ok": true, "info": …}``, the session's ``info()`` (LiteRT: the delegate
  applied and the op counts) or null;
- ``{"op": "close"}``: exit 0.

Any failure answers ``{"ok": false, "error": "..."}`` instead.
"""

from __future__ import annotations

import io
import json
import os
import platform
import struct
import sys

import numpy as np

if __package__:  # imported by the host (edgeintent.runtimes.worker)
    from edgeintent.runtimes import litert_session, sessions
else:  # run as a script (the emulated python has no edgeintent): the sibling files
    import litert_session
    import sessions

#: runtime name → ``(path, precision, threads, inputs, outputs) -> session``: every runtime the worker opens
KINDS = {**sessions.KINDS, **litert_session.KINDS}

_HEAD = struct.Struct(">II")


def read_frame(stream) -> tuple[dict, bytes] | None:
    raw = stream.read(_HEAD.size)
    if len(raw) < _HEAD.size:
        return None
    hlen, plen = _HEAD.unpack(raw)
    header = json.loads(stream.read(hlen))
    payload = stream.read(plen) if plen else b""
    return header, payload


def write_frame(stream, header: dict, payload: bytes = b"") -> None:
    body = json.dumps(header).encode()
    stream.write(_HEAD.pack(len(body), len(payload)) + body + payload)
    stream.flush()


def pack(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def unpack(payload: bytes) -> dict:
    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}




def serve(inp, out) -> int:
    first = read_frame(inp)
    if first is None:
        return 1
    spec = first[0]
    try:
        runner = KINDS[spec["kind"]](spec["path"], spec["precision"], int(spec["threads"]), spec.get("inputs") or [],
                                     spec.get("outputs") or [])  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - reported to the host, which raises it as a user error
        write_frame(out, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    write_frame(out, {"ok": True, "runtime": runner.runtime, "arch": platform.machine(), "inputs": runner.inputs,
                      "outputs": runner.outputs, "python": platform.python_version(),
                      "numpy": np.__version__})  # fmt: skip
    while True:
        frame = read_frame(inp)
        if frame is None or frame[0].get("op") == "close":
            return 0
        if frame[0].get("op") == "info":
            info = getattr(runner, "info", None)
            write_frame(out, {"ok": True, "info": info() if info is not None else None})
            continue
        try:
            result = runner.run(unpack(frame[1]))
            write_frame(out, {"ok": True}, pack({k: np.asarray(v) for k, v in result.items()}))
        except Exception as exc:  # noqa: BLE001
            write_frame(out, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def main() -> int:
    out = os.fdopen(os.dup(1), "wb")
    sys.stdout.flush()
    os.dup2(2, 1)  # runtime chatter on fd 1 goes to stderr, never into a frame
    return serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    sys.exit(main())
