"""Running a fixed-shape artifact (batch 1, sequences at their static length) on the signature's feeds.

Programs such as ExecuTorch's take one row at the exported shapes. :func:`run_rows` turns the usual
feeds (any batch; sequence dims up to the static length) into that: each row right-padded with zeros
to the static shape (the ``*_len`` inputs mask the padding, so a row's padding never changes its
outputs), run one by one, the outputs concatenated. A feed longer than its static shape is refused
with one line (``ExportError``) before anything runs. Any runtime with static shapes can use it: it
needs the static shapes and a function running one padded row.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeintent.errors import ExportError


def check_shape(target: str, name: str, static: tuple[int, ...], a: np.ndarray) -> None:
    """A one-line ``ExportError`` unless ``a`` (any batch) fits ``static`` in every other dim."""
    if a.ndim != len(static) or any(g > s for g, s in zip(a.shape[1:], static[1:], strict=True)):
        raise ExportError(f"{target} artifact takes {name} of shape at most {tuple(static)} (static shapes; "
                          f"export with a larger max_len for longer windows), got {tuple(a.shape)}")  # fmt: skip


def pad_row(a: np.ndarray, static: tuple[int, ...]) -> np.ndarray:
    """One row (batch 1) right-padded with zeros to ``static``."""
    out = np.zeros(static, a.dtype)
    out[(slice(None),) + tuple(slice(0, g) for g in a.shape[1:])] = a
    return out


def run_rows(target: str, shapes: dict[str, tuple[int, ...]], outputs: list[str], feeds: dict,
             run_one: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
             dtypes: dict[str, np.dtype] | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """``run_one({input: padded row}) -> [output arrays in `outputs` order]`` over every row of ``feeds``,
    each input cast to ``dtypes[name]`` (the artifact's declared type) when given."""
    arrays = {}
    for n in shapes:
        if n not in feeds:
            raise ExportError(f"{target} artifact needs input {n!r}")
        a = np.asarray(feeds[n])
        arrays[n] = np.ascontiguousarray(a if dtypes is None or n not in dtypes else a.astype(dtypes[n], copy=False))
    for n, a in arrays.items():
        check_shape(target, n, shapes[n], a)
    batch = next(iter(arrays.values())).shape[0] if arrays else 0
    rows = [[np.asarray(r, np.float32).reshape(-1) for r in run_one({n: pad_row(a[b : b + 1], shapes[n]) for n, a in arrays.items()})]
            for b in range(batch)]  # fmt: skip
    return {o: np.concatenate([r[k] for r in rows]) if rows else np.empty(0, np.float32) for k, o in enumerate(outputs)}
