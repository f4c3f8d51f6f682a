"""The kit's C library in this process (ctypes): the decision rule, as an app calls it.

:class:`KitLibrary` compiles ``kit.c`` into a shared library (host C compiler) in a directory the
caller owns and exposes ``kit_decide``; tests compare it with :func:`edgeintent.decide.rule.decide`
value by value.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from edgeintent.errors import KitError
from edgeintent.kit import C_DIR
from edgeintent.kit.build import compile_library

OBJECTIVES = {"purchases": 0, "incremental": 1, "value": 2}


class _Rule(ctypes.Structure):
    _fields_ = [("lambda_", ctypes.c_double), ("gamma", ctypes.c_double), ("order_value", ctypes.c_double),
                ("objective", ctypes.c_int), ("n_amounts", ctypes.c_uint32),
                ("amounts", ctypes.POINTER(ctypes.c_double))]  # fmt: skip


class KitLibrary:
    """``kit.c`` compiled for this host and loaded with ctypes."""

    def __init__(self, workdir: Path, src: Path = C_DIR) -> None:
        self.path = compile_library(src, Path(workdir) / "libedgeintent_kit.so")
        self.lib = ctypes.CDLL(str(self.path))
        self.lib.kit_decide.restype = ctypes.c_int
        self.lib.kit_decide.argtypes = [ctypes.POINTER(_Rule), ctypes.POINTER(ctypes.c_double), ctypes.c_double]

    def decide(self, rule, p, stay: float | None = None) -> int:
        """``kit_decide`` on a :class:`~edgeintent.decide.rule.DecisionRule` and one user's outputs."""
        amounts = (ctypes.c_double * len(rule.amounts))(*rule.amounts)
        c_rule = _Rule(rule.lam, rule.gamma, rule.order_value, OBJECTIVES[rule.objective], len(rule.amounts), amounts)
        probs = (ctypes.c_double * len(p))(*(float(v) for v in p))
        got = self.lib.kit_decide(ctypes.byref(c_rule), probs, float("nan") if stay is None else float(stay))
        if got < 0:
            raise KitError(f"kit_decide refused the rule or the probabilities (status {-got})")
        return got
