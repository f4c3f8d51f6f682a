"""The runtime sessions themselves: onnxruntime and MNN (session and Module API), nothing else.

This file imports only the standard library, numpy and the runtime it opens — not edgeintent, not
torch — because the aarch64 worker (``worker.py``) runs it on an emulated python where only numpy and
the runtimes are installed (``litert_session.py`` is the LiteRT session, loaded the same way). The host opens artifacts with the very same classes (through
``edgeintent.runtimes``), so every runtime call is the same code on both architectures.

Each session has ``run(feeds) -> {output: array}``, ``runtime`` (name and version), ``inputs`` and
``outputs``; a feed it lacks is a ``KeyError`` naming the input (the host wraps it in a one-line error).
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np


def ort_session_options(precision: str, threads: int = 1, profile_prefix: str | None = None):
    """The onnxruntime session options every edgeintent session uses (host, measuring child, aarch64 worker)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # onnxruntime 1.32 segfaults creating fp16 sessions at ORT_ENABLE_ALL; EXTENDED is safe
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if precision != "fp32" else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


@contextlib.contextmanager
def quiet_fd(fd: int = 1):
    """Drop what runtimes' native code writes on ``fd`` meanwhile (MNN prints a CPU-feature line on fd 1
    when it starts; LiteRT's interpreter logs its delegate on fd 2)."""
    (sys.stdout if fd == 1 else sys.stderr).flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class OrtSession:
    """onnxruntime; ``model`` is a path or the serialized bytes of an ONNX model."""

    def __init__(self, model, precision: str, threads: int, inputs=None, outputs=None) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(model, ort_session_options(precision, threads), providers=["CPUExecutionProvider"])
        self.runtime = f"onnxruntime {ort.__version__}"
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._dtypes = {i.name: np.int64 if "int64" in i.type else np.float32 for i in self.session.get_inputs()}

    def run(self, feeds: dict) -> dict:
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise KeyError(f"onnx artifact needs input {missing[0]!r}")
        res = self.session.run(self.outputs, {n: np.ascontiguousarray(feeds[n], self._dtypes[n]) for n in self.inputs})
        return dict(zip(self.outputs, res))


def _mnn_arrays(inputs, feeds: dict) -> dict:
    arrays = {}
    for n in inputs:
        if n not in feeds:
            raise KeyError(f"mnn artifact needs input {n!r}")
        a = np.asarray(feeds[n])
        arrays[n] = np.ascontiguousarray(a, np.int32 if np.issubdtype(a.dtype, np.integer) else np.float32)
    return arrays


def _host_view(tensor, shape: tuple, caffe: int):
    """A numpy array over ``tensor``'s own host memory, or None when it has none of that layout.

    ``getNumpyData`` wraps the tensor's host pointer without copying; the view is used only when the
    tensor is in the Caffe (NCHW, plain row-major) layout, has ``shape``, and the array's data pointer
    is the tensor's host pointer (a tensor without host memory would give a fresh numpy buffer).
    """
    import ctypes

    try:
        if tensor.getDimensionType() != caffe or tuple(tensor.getShape()) != tuple(shape):
            return None
        cap = tensor.getHost()
        view = tensor.getNumpyData()
    except (ValueError, TypeError, SystemError):  # a null host pointer: PyCapsule_New refuses it
        return None
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    if not isinstance(view, np.ndarray) or view.dtype not in (np.int32, np.float32) or view.shape != tuple(shape):
        return None
    if get(cap, None) != view.__array_interface__["data"][0]:
        return None
    return view


class MnnSession:
    """MNN's session API (``Interpreter``), resizing inputs when a request's shapes change.

    While the shapes stay the same, a call reuses what the last resize bound: the session's input and
    output tensors and, where the CPU backend keeps them as plain row-major host memory, numpy views of
    that memory, so a call writes each feed into its input in place (one cast-and-copy, no MNN.Tensor
    built per input) and reads each output with one copy (no host tensor built per output). A tensor
    without such memory, or any tensor of a session at precision "low", goes through ``copyFrom`` /
    ``copyToHostTensor``.
    """

    def __init__(self, path: str, precision: str, threads: int, inputs, outputs) -> None:
        import MNN

        self._mnn = MNN
        self.interpreter = MNN.Interpreter(path)
        self.session = self.interpreter.createSession({"numThread": threads, "precision": precision})
        self.runtime = f"MNN {MNN.version()}"
        self.inputs = list(inputs) if inputs else list(self.interpreter.getSessionInputAll(self.session))
        self.outputs = list(outputs) if outputs else list(self.interpreter.getSessionOutputAll(self.session))
        self._shapes: dict = {}
        # precision "low" lets a backend (MNN's ARM CPU) keep a session's tensors in fp16: their host memory
        # is then not the float32 the tensor reports, so only copyFrom / copyToHostTensor read it right
        self._views = precision != "low"
        self._in: dict = {}  # name → (session tensor, view or None)
        self._out: dict = {}

    def _bind(self, shapes: dict) -> None:
        MNN, it = self._mnn, self.interpreter
        for n, shape in shapes.items():
            it.resizeTensor(it.getSessionInput(self.session, n), tuple(shape))
        it.resizeSession(self.session)
        caffe = MNN.Tensor_DimensionType_Caffe
        self._in = {}
        for n, shape in shapes.items():
            t = it.getSessionInput(self.session, n)
            self._in[n] = (t, _host_view(t, shape, caffe) if self._views else None)
        self._out = {}
        for n in self.outputs:
            t = it.getSessionOutput(self.session, n)
            self._out[n] = (t, _host_view(t, tuple(t.getShape()), caffe) if self._views else None)
        self._shapes = shapes

    def run(self, feeds: dict) -> dict:
        MNN, it = self._mnn, self.interpreter
        shapes = {}
        for n in self.inputs:
            if n not in feeds:
                raise KeyError(f"mnn artifact needs input {n!r}")
            shapes[n] = np.shape(feeds[n])
        if shapes != self._shapes:
            self._bind(shapes)
        for n, (t, view) in self._in.items():
            a = np.asarray(feeds[n])
            if view is not None:
                view[...] = a  # the cast (int64 → int32, float64 → float32) and the copy in one step
            else:
                a = np.ascontiguousarray(a, np.int32 if np.issubdtype(a.dtype, np.integer) else np.float32)
                kind = MNN.Halide_Type_Int if a.dtype == np.int32 else MNN.Halide_Type_Float
                t.copyFrom(MNN.Tensor(tuple(a.shape), kind, a, MNN.Tensor_DimensionType_Caffe))
        it.runSession(self.session)
        out = {}
        for n, (t, view) in self._out.items():
            if view is not None:
                out[n] = np.array(view, dtype=np.float32, copy=True)
                continue
            shape = tuple(t.getShape())
            host = MNN.Tensor(shape, MNN.Halide_Type_Float, np.zeros(shape, np.float32), MNN.Tensor_DimensionType_Caffe)
            t.copyToHostTensor(host)
            # getNumpyData: one buffer copy (getData builds a Python tuple of floats, ~25x slower at 300 values)
            out[n] = np.array(host.getNumpyData(), dtype=np.float32, copy=True).reshape(shape)
        return out


class MnnModule:
    """MNN's Module API: the only MNN API that runs control flow (the While-loop RNNs that the
    converter writes without ``--useOriginRNNImpl``)."""

    def __init__(self, path: str, precision: str, threads: int, inputs, outputs) -> None:
        import MNN
        import MNN.expr as F
        import MNN.nn as nn

        modes = {"normal": F.PrecisionMode.Normal, "low": F.PrecisionMode.Low, "high": F.PrecisionMode.High}
        self._F = F
        self.inputs, self.outputs = list(inputs), list(outputs)
        rt = nn.create_runtime_manager(({"backend": "CPU", "precision": precision, "numThread": threads},))
        self.module = nn.load_module_from_file(path, self.inputs, self.outputs, runtime_manager=rt,
                                               precision_mode=modes[precision], thread_num=threads)  # fmt: skip
        self.runtime = f"MNN {MNN.version()}"

    def run(self, feeds: dict) -> dict:
        F = self._F
        arrays = _mnn_arrays(self.inputs, feeds)
        vars_ = [F.const(a, list(a.shape), F.NCHW, F.int if a.dtype == np.int32 else F.float) for a in arrays.values()]
        res = self.module.forward(vars_)
        return {n: np.array(v.read(), dtype=np.float32).reshape(v.shape) for n, v in zip(self.outputs, res)}


KINDS = {"onnxruntime": OrtSession, "mnn-session": MnnSession, "mnn-module": MnnModule}
