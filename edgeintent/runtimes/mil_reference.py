"""A numpy reference executor for CoreML ML programs: CoreML parity on Linux.

There is no CoreML runtime on Linux (``MLModel.predict`` is macOS-only). This module loads the MIL
program that is *inside the saved .mlpackage* (coremltools' milproto loader: the same program the
phone compiles, weights read back from ``weight.bin``) and executes it op by op with numpy kernels
that follow the MIL op definitions (``coremltools.converters.mil.mil.ops.defs``).

What it checks: the converted graph's semantics (op choice, gate orders, masks, shapes, dtypes, the
weights as stored). What it does not: Apple's kernels (Neural Engine / GPU numerics, op fusion). Its
results are labelled "MIL reference (graph semantics, not Apple kernels)" everywhere.

fp16 programs are executed in float16: every op's result is rounded to float16 as numpy computes it
(numpy evaluates float16 ops in higher precision and rounds the result), which emulates fp16
arithmetic with fp32 accumulation inside matmul — close to, not identical with, a GPU or ANE.

An op the executor does not know is a clear error naming the op (``MilReferenceError``).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeintent.errors import MilReferenceError, MilRuntimeError
from edgeintent.registry import Registry

LABEL = "MIL reference (graph semantics, not Apple kernels)"

_DTYPES = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "int8": np.int8, "uint8": np.uint8,
           "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "int64": np.int64, "bool": np.bool_}  # fmt: skip


def quiet_coremltools():
    """Import coremltools without its import-time chatter (missing macOS runtime, untested versions; and,
    where the executorch extra installed torchao, the deprecation notice torch's pytree logs when
    coremltools' optional-dependency probe imports torchao: torch's handler writes to the stderr it
    captured at torch's import, so only the logger's level keeps it out)."""
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    pytree = logging.getLogger("torch.utils._pytree")
    level = pytree.level
    pytree.setLevel(logging.ERROR)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            import coremltools
    finally:
        pytree.setLevel(level)
    return coremltools


Kernel = Callable[..., object]
KERNELS: Registry[Kernel] = Registry("MIL kernel")
# kernels whose semantics changed between opset versions take ``opset`` (15, 16, 17, …: the iOS
# version of the program's ``main``); the interpreter passes it to those only
_OPSET_AWARE: set[str] = set()


def kernel(*names: str) -> Callable[[Kernel], Kernel]:
    def deco(fn: Kernel) -> Kernel:
        for n in names:
            KERNELS.register(n, fn)
            if "opset" in inspect.signature(fn).parameters:
                _OPSET_AWARE.add(n)
        return fn

    return deco


def _float_like(x: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Keep a float op's dtype (fp16 stays fp16); ints promoted to fp32."""
    dt = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
    return np.asarray(value).astype(dt, copy=False)


def _same(x, value):
    return np.asarray(value).astype(np.result_type(x), copy=False)


# -- elementwise -------------------------------------------------------------------------------

_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "maximum": np.maximum, "minimum": np.minimum,
           "pow": np.power, "floor_div": np.floor_divide, "mod": np.mod}  # fmt: skip
_COMPARE = {"equal": np.equal, "not_equal": np.not_equal, "greater": np.greater, "greater_equal": np.greater_equal,
            "less": np.less, "less_equal": np.less_equal, "logical_and": np.logical_and,
            "logical_or": np.logical_or, "logical_xor": np.logical_xor}  # fmt: skip
_UNARY = {"exp": np.exp, "sqrt": np.sqrt, "abs": np.abs, "tanh": np.tanh, "sin": np.sin, "cos": np.cos,
          "floor": np.floor, "ceil": np.ceil, "sign": np.sign, "square": np.square, "exp2": np.exp2}  # fmt: skip


def _binary(fn):
    return lambda x, y: np.asarray(fn(x, y)).astype(np.result_type(x, y), copy=False)


for _n, _f in _BINARY.items():
    kernel(_n)(_binary(_f))
for _n, _f in _COMPARE.items():
    kernel(_n)(lambda x, y, _f=_f: np.asarray(_f(x, y)))
for _n, _f in _UNARY.items():
    kernel(_n)(lambda x, _f=_f: _same(x, _f(x)))


@kernel("real_div")
def _real_div(x, y):
    """The output type follows the inputs (int / int is an int, truncated toward zero)."""
    return np.asarray(np.true_divide(x, y)).astype(np.result_type(x, y), copy=False)


@kernel("logical_not")
def _not(x):
    return np.logical_not(x)


@kernel("inverse")
def _inverse(x, epsilon=1e-4):
    return _same(x, 1.0 / (x + epsilon))


@kernel("rsqrt")
def _rsqrt(x, epsilon=1e-12):
    return _same(x, 1.0 / np.sqrt(x + epsilon))


@kernel("log")
def _log(x, epsilon=1e-45):
    return _float_like(x, np.log(x + np.asarray(epsilon, dtype=x.dtype)))


@kernel("sigmoid")
def _sigmoid(x):
    return _same(x, 1.0 / (1.0 + np.exp(-x)))


@kernel("softplus")
def _softplus(x):
    return _same(x, np.logaddexp(0, x))


@kernel("relu")
def _relu(x):
    return _same(x, np.maximum(x, 0))


@kernel("clip")
def _clip(x, alpha, beta):
    return _same(x, np.minimum(np.maximum(x, alpha), beta))


@kernel("softmax")
def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=int(axis), keepdims=True))
    return _same(x, e / np.sum(e, axis=int(axis), keepdims=True))


@kernel("select")
def _select(cond, a, b):
    return np.where(cond, a, b).astype(np.result_type(a, b), copy=False)


@kernel("cast")
def _cast(x, dtype):
    if dtype not in _DTYPES:
        raise MilReferenceError(f"MIL reference: cast to unknown dtype {dtype!r}")
    return np.asarray(x).astype(_DTYPES[dtype])


@kernel("identity")
def _identity(x):
    return x


# -- linear algebra ----------------------------------------------------------------------------


@kernel("linear")
def _linear(x, weight, bias=None):
    y = np.matmul(x, weight.T)
    return _same(x, y if bias is None else y + bias)


@kernel("matmul")
def _matmul(x, y, transpose_x=False, transpose_y=False):
    if transpose_x:
        x = np.swapaxes(x, -1, -2)
    if transpose_y:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y).astype(np.result_type(x, y), copy=False)


@kernel("batch_norm")
def _batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + epsilon)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return _same(x, y)


def _reduce(fn):
    def run(x, axes=None, keep_dims=False):
        ax = None if axes is None else tuple(int(a) for a in np.atleast_1d(axes))
        return _same(x, fn(x, axis=ax, keepdims=bool(keep_dims)))

    return run


for _n, _f in {"reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min, "reduce_prod": np.prod,
               "reduce_mean": np.mean}.items():  # fmt: skip
    kernel(_n)(_reduce(_f))


# -- shapes and indexing -----------------------------------------------------------------------


@kernel("shape")
def _shape(x):
    return np.array(np.shape(x), dtype=np.int32)


@kernel("reshape")
def _reshape(x, shape, opset=15):
    """A 0 in ``shape`` copies a dimension of ``x``: the same position counted from the left before iOS17,
    from the right from iOS17 on (a 0 with no matching dimension is 1)."""
    shape = [int(s) for s in np.atleast_1d(shape)]
    if opset >= 17:
        off = x.ndim - len(shape)
        shape = [(x.shape[i + off] if i + off >= 0 else 1) if s == 0 else s for i, s in enumerate(shape)]
    else:
        shape = [x.shape[i] if s == 0 and i < x.ndim else s for i, s in enumerate(shape)]
    return np.reshape(x, shape)


@kernel("expand_dims")
def _expand_dims(x, axes):
    return np.expand_dims(x, tuple(int(a) for a in np.atleast_1d(axes)))


@kernel("squeeze")
def _squeeze(x, axes=None):
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(int(a) for a in np.atleast_1d(axes)))


@kernel("transpose")
def _transpose(x, perm):
    return np.transpose(x, [int(p) for p in perm])


@kernel("concat")
def _concat(values, axis, interleave=False):
    if interleave:
        raise MilReferenceError("MIL reference: concat with interleave=True is not implemented")
    if any(np.ndim(v) == 0 for v in values):  # MIL concatenates scalars as 1-element vectors
        values = [np.atleast_1d(v) for v in values]
    return np.concatenate(values, axis=int(axis))


@kernel("split")
def _split(x, axis, split_sizes=None, num_splits=None):
    axis = int(axis)
    if split_sizes is not None:
        cuts = np.cumsum([int(v) for v in np.atleast_1d(split_sizes)])[:-1]
        return tuple(np.split(x, cuts, axis=axis))
    return tuple(np.split(x, int(num_splits), axis=axis))


@kernel("stack")
def _stack(values, axis):
    return np.stack(values, axis=int(axis))


@kernel("tile")
def _tile(x, reps):
    return np.tile(x, [int(r) for r in reps])


@kernel("fill")
def _fill(shape, value=0.0):
    value = np.asarray(value)
    return np.full([int(s) for s in np.atleast_1d(shape)], value, dtype=value.dtype)


@kernel("range_1d")
def _range(start, end, step):
    return np.arange(start, end, step).astype(np.result_type(start, end, step))


@kernel("band_part")
def _band_part(x, lower=-1, upper=-1):
    n, m = x.shape[-2:]
    i = np.arange(n)[:, None]
    j = np.arange(m)[None, :]
    keep = ((int(lower) < 0) | (i - j <= int(lower))) & ((int(upper) < 0) | (j - i <= int(upper)))
    return np.where(keep, x, np.zeros((), x.dtype))


@kernel("slice_by_index")
def _slice_by_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    rank = x.ndim
    stride = [1] * rank if stride is None else [int(s) for s in stride]
    index = []
    for d in range(rank):
        if squeeze_mask is not None and squeeze_mask[d]:
            index.append(int(begin[d]))
            continue
        b = None if (begin_mask is not None and begin_mask[d]) else int(begin[d])
        e = None if (end_mask is not None and end_mask[d]) else int(end[d])
        index.append(slice(b, e, stride[d]))
    return x[tuple(index)]


@kernel("slice_by_size")
def _slice_by_size(x, begin, size):
    index = tuple(slice(int(b), None if int(s) == -1 else int(b) + int(s)) for b, s in zip(begin, size, strict=True))
    return x[index]


def _wrap(indices, n, op="gather", validate_indices=False, negative=True):
    """Indices into an axis of size ``n``, negatives wrapped. An index out of range is an error under
    ``validate_indices`` (the device's too: :class:`MilRuntimeError`); without it the result is
    undefined, which the reference refuses rather than guesses."""
    indices = np.asarray(indices).astype(np.int64)
    bad = (indices >= n) | (indices < (-n if negative else 0))
    if bad.any():
        where = f"{op} index {int(indices[bad].flat[0])} out of range for an axis of size {n}"
        if validate_indices:
            raise MilRuntimeError(f"MIL reference: {where} (validate_indices=True)")
        raise MilReferenceError(f"MIL reference: {where}: the result is undefined")
    return np.where(indices < 0, indices + n, indices)


@kernel("gather")
def _gather(x, indices, axis=0, batch_dims=0, validate_indices=False):
    axis = int(axis) % x.ndim
    if int(batch_dims) != 0:
        raise MilReferenceError("MIL reference: gather with batch_dims > 0 is not implemented")
    return np.take(x, _wrap(indices, x.shape[axis], "gather", validate_indices), axis=axis)


@kernel("gather_along_axis")
def _gather_along_axis(x, indices, axis=0, validate_indices=False):
    axis = int(axis) % x.ndim
    return np.take_along_axis(x, _wrap(indices, x.shape[axis], "gather_along_axis", validate_indices), axis=axis)


@kernel("gather_nd")
def _gather_nd(x, indices, batch_dims=0, validate_indices=False):
    indices = np.asarray(indices).astype(np.int64)
    bd = int(batch_dims)
    if bd == 0:
        k = indices.shape[-1]
        return x[tuple(_wrap(indices[..., j], x.shape[j], "gather_nd", validate_indices) for j in range(k))]
    lead = x.shape[:bd]
    xs = x.reshape((-1,) + x.shape[bd:])
    ins = indices.reshape((-1,) + indices.shape[bd:])
    out = np.stack([_gather_nd(a, b, 0, validate_indices) for a, b in zip(xs, ins, strict=True)])
    return out.reshape(lead + out.shape[1:])


_SCATTER = {"update": None, "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
            "max": np.maximum, "min": np.minimum}  # fmt: skip


@kernel("scatter")
def _scatter(data, indices, updates, axis=0, mode="add", validate_indices=False, opset=15):
    """Negative indices wrap before iOS17; from iOS17 on they are out of range, an error under
    ``validate_indices`` and undefined (refused here) without it."""
    if mode not in _SCATTER:
        raise MilReferenceError(f"MIL reference: scatter mode {mode!r} is not implemented")
    axis = int(axis) % data.ndim
    out = np.array(data, copy=True)
    idx = _wrap(indices, data.shape[axis], "scatter", validate_indices, negative=opset < 17)
    moved = np.moveaxis(out, axis, 0)
    upd = np.moveaxis(np.asarray(updates, dtype=data.dtype), axis, 0)
    for k, i in enumerate(np.atleast_1d(idx)):
        moved[i] = upd[k] if _SCATTER[mode] is None else _SCATTER[mode](moved[i], upd[k])
    return out


# -- compressed weights (coremltools.optimize output), decompressed with coremltools' own reference --


@kernel("constexpr_affine_dequantize")
def _affine_dequantize(quantized_data, zero_point, scale, axis):
    from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import constexpr_affine_dequantize

    return constexpr_affine_dequantize.decompress(quantized_data, zero_point, scale, int(axis))


@kernel("constexpr_lut_to_dense")
def _lut_to_dense(lut, indices, shape):
    from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import constexpr_lut_to_dense

    return constexpr_lut_to_dense.decompress(lut, indices, np.asarray(shape))


@kernel("constexpr_cast")
def _constexpr_cast(source_val, output_dtype):
    return np.asarray(source_val).astype(_DTYPES[output_dtype])


# -- recurrent ---------------------------------------------------------------------------------

_ACT = {"sigmoid": _sigmoid, "tanh": lambda x: _same(x, np.tanh(x)), "relu": _relu,
        "linear": lambda x: x, "hard_sigmoid": lambda x: _same(x, np.clip(0.2 * x + 0.5, 0, 1))}  # fmt: skip


@kernel("lstm")
def _lstm(x, initial_h, initial_c, weight_ih, weight_hh, bias=None, peephole=None, output_sequence=False,
          direction="forward", recurrent_activation="sigmoid", cell_activation="tanh", activation="tanh",
          clip=None, **backward):  # fmt: skip
    """MIL lstm: x (T, B, I); gates ordered [input, forget, output, cell]; returns (y, h, c)."""
    if direction != "forward" or peephole is not None or clip is not None:
        raise MilReferenceError(f"MIL reference: lstm with direction={direction!r}, peephole or clip is not implemented")
    rec, cell_act, act = _ACT[recurrent_activation], _ACT[cell_activation], _ACT[activation]
    h, c = initial_h, initial_c
    hidden = h.shape[-1]
    ys = []
    for t in range(x.shape[0]):
        g = _same(x, np.matmul(x[t], weight_ih.T) + np.matmul(h, weight_hh.T) + (0 if bias is None else bias))
        i, f, o, z = (g[:, k * hidden:(k + 1) * hidden] for k in range(4))
        c = _same(x, rec(f) * c + rec(i) * cell_act(z))
        h = _same(x, rec(o) * act(c))
        ys.append(h)
    y = np.stack(ys) if output_sequence else h[None]
    return y, h, c


@kernel("gru")
def _gru(x, initial_h, weight_ih, weight_hh, bias=None, direction="forward", output_sequence=False,
         recurrent_activation="sigmoid", activation="tanh", **_):  # fmt: skip
    """MIL gru: gates stacked [reset r, new o, update z]; the reset gate scales h *before* the
    recurrent matmul: o = act(W_o x + R_o (r * h) + b_o), h = (1 - z) o + z h (CoreML's kernel,
    which coremltools' op tests check; PyTorch's GRU resets after the matmul, so the torch
    frontend lowers nn.GRU to a loop of elementwise ops, not to this op). ``reverse`` runs over the
    reversed sequence and returns the steps in the order they ran."""
    if direction not in ("forward", "reverse"):
        raise MilReferenceError(f"MIL reference: gru with direction={direction!r} is not implemented")
    rec, act = _ACT[recurrent_activation], _ACT[activation]
    h = initial_h
    hidden = h.shape[-1]
    b = np.zeros(3 * hidden, x.dtype) if bias is None else bias
    (w_r, w_o, w_z), (r_r, r_o, r_z), (b_r, b_o, b_z) = (np.split(a, 3, axis=0) for a in (weight_ih, weight_hh, b))
    ys = []
    for xt in x if direction == "forward" else x[::-1]:
        r = rec(_same(x, xt @ w_r.T + h @ r_r.T + b_r))
        z = rec(_same(x, xt @ w_z.T + h @ r_z.T + b_z))
        o = act(_same(x, xt @ w_o.T + _same(x, r * h) @ r_o.T + b_o))
        h = _same(x, (1 - z) * o + z * h)
        ys.append(h)
    y = np.stack(ys) if output_sequence else h[None]
    return y, h


# -- the interpreter ---------------------------------------------------------------------------


class MilProgram:
    """A loaded ML program (``.mlpackage``) that runs with :meth:`run`."""

    def __init__(self, package: str | Path) -> None:
        quiet_coremltools()
        from coremltools.converters.mil.frontend.milproto.load import load
        from coremltools.models.utils import load_spec

        package = Path(package)
        try:
            spec = load_spec(str(package))
            self.program = load(spec, spec.specificationVersion, file_weights_dir=str(package / "Data/com.apple.CoreML/weights"))
        except Exception as exc:  # the loader raises many kinds on a damaged package
            raise MilReferenceError(f"{package}: not a loadable ML program ({type(exc).__name__}: {exc})") from None
        self.function = self.program.functions["main"]
        self.opset = _ios_version(self.function.opset_version)
        self.inputs = list(self.function.inputs)
        self.input_dtypes = {n: _DTYPES.get(_dtype_name(v), np.float32) for n, v in self.function.inputs.items()}
        self.outputs = [v.name for v in self.function.outputs]
        self._constexpr: dict[str, np.ndarray] = {}
        self.op_types = sorted(_op_types(self.function))
        unknown = [t for t in self.op_types if t not in KERNELS and t not in ("const", "while_loop", "cond")]
        if unknown:  # list ops (make_list, list_write, …) among them: no kernels
            raise MilReferenceError(f"MIL reference: no kernel for op {unknown[0]!r} (ops here: {', '.join(self.op_types)})")
        self.dtypes = sorted(_dtypes(self.function))  # e.g. fp16 appears only in fp16 programs

    def run(self, feeds: dict[str, np.ndarray], trace: dict | None = None) -> dict[str, np.ndarray]:
        """Execute ``main``; ``trace`` (a dict) receives every op output by name."""
        env: dict[str, object] = {}
        for name in self.inputs:
            if name not in feeds:
                raise MilReferenceError(f"the ML program needs input {name!r}")
            env[name] = np.ascontiguousarray(feeds[name], dtype=self.input_dtypes[name])
        self._block(self.function, env, trace)
        return {v.name: np.asarray(env[v.name]) for v in self.function.outputs}

    def _value(self, var, env):
        if isinstance(var, list | tuple):
            return [self._value(v, env) for v in var]
        if var.name in env:
            return env[var.name]
        if var.val is not None:
            return _const(var)
        raise MilReferenceError(f"MIL reference: {var.name} is used before it is computed")

    def _block(self, block, env, trace) -> list:
        for op in block.operations:
            outs = op.outputs
            if op.op_type == "const":
                env[outs[0].name] = _const(outs[0])
                continue
            if op.op_type.startswith("constexpr_"):  # compressed weights: decompress once per program
                if outs[0].name not in self._constexpr:
                    args = {k: self._value(v, env) for k, v in op.inputs.items()}
                    self._constexpr[outs[0].name] = KERNELS.get(op.op_type)(**args)
                env[outs[0].name] = self._constexpr[outs[0].name]
                continue
            if op.op_type == "while_loop":
                vals = self._while(op, env, trace)
            elif op.op_type == "cond":
                pred = bool(np.asarray(self._value(op.inputs["pred"], env)).item())
                vals = self._block(op.blocks[0 if pred else 1], env, trace)
            else:
                args = {k: self._value(v, env) for k, v in op.inputs.items()}
                if op.op_type in _OPSET_AWARE:
                    args["opset"] = self.opset
                try:
                    res = KERNELS.get(op.op_type)(**args)
                except MilReferenceError:
                    raise
                except Exception as exc:
                    raise MilReferenceError(f"MIL reference: op {op.name} ({op.op_type}) failed: {exc}") from None
                vals = list(res) if isinstance(res, tuple) else [res]
            for var, val in zip(outs, vals, strict=True):
                env[var.name] = val
                if trace is not None:
                    trace[var.name] = val
        return [self._value(v, env) for v in block.outputs]

    def _while(self, op, env, trace) -> list:
        cond_block, body_block = op.blocks
        state = self._value(list(op.inputs["loop_vars"]), env)
        for _ in range(1_000_000):
            local = dict(env)
            local.update({v.name: s for v, s in zip(cond_block.inputs, state, strict=True)})
            if not bool(np.asarray(self._block(cond_block, local, None)[0]).item()):
                return state
            local = dict(env)
            local.update({v.name: s for v, s in zip(body_block.inputs, state, strict=True)})
            state = self._block(body_block, local, None)
        raise MilReferenceError(f"MIL reference: while_loop {op.name} did not end after 1,000,000 iterations")


def _const(var):
    """A const's value with its declared shape (the loader gives a (1,) tensor as a numpy scalar)."""
    val = var.val
    if isinstance(val, str | bool | int | float) or val is None:
        return val
    val = np.asarray(val)
    shape = getattr(var, "shape", None)
    if shape is not None and all(isinstance(d, int) for d in shape) and val.shape != tuple(shape) and val.size == int(np.prod(shape)):
        val = val.reshape(shape)
    return val


def _ios_version(target) -> int:
    """15 for ``ct.target.iOS15`` (and its macOS / tvOS / watchOS twins), 17 for iOS17, …"""
    import coremltools as ct

    if target is None:
        return 15
    return max(v for v in range(15, 30) if hasattr(ct.target, f"iOS{v}") and getattr(ct.target, f"iOS{v}") <= target)


def _dtype_name(var) -> str:
    from coremltools.converters.mil.mil import types

    return types.builtin_to_string(var.dtype)


def _dtypes(block) -> set[str]:
    found = set()
    for op in block.operations:
        for v in op.outputs:
            try:
                found.add(_dtype_name(v) or "")
            except Exception:  # list / tuple vars have no scalar dtype (ListVar.dtype raises ValueError)
                pass
        for b in op.blocks:
            found |= _dtypes(b)
    return found


def _op_types(block) -> set[str]:
    found = set()
    for op in block.operations:
        found.add(op.op_type)
        for b in op.blocks:
            found |= _op_types(b)
    return found


class MilSession:
    """A saved ``.mlpackage`` in the reference executor, as a runtime session."""

    def __init__(self, path: Path) -> None:
        coremltools = quiet_coremltools()
        self.program = MilProgram(path)
        self.runtime = f"{LABEL}, coremltools {coremltools.__version__}"
        self.inputs = self.program.inputs
        self.outputs = self.program.outputs

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.program.run(feeds)
        return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
