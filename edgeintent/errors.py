"""User-facing errors: one line, actionable. The CLI prints ``str(err)`` and exits 2.

Anything that is *not* an ``EdgeIntentError`` is a bug and keeps its traceback.
"""

from __future__ import annotations


#: the longest message an error keeps (the rest is cut, visibly)
MAX_MESSAGE = 400


def shown(value, limit: int = 40) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters with the full length named
    (a 100,000-character cell is echoed as its first characters, not in full)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


class EdgeIntentError(Exception):
    """Base class for every error caused by bad input or an impossible request."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # One line whatever the cause carried, and short whatever it echoes.
        text = " ".join(str(message).split())
        if len(text) > MAX_MESSAGE:
            text = f"{text[:MAX_MESSAGE]}… (message cut at {MAX_MESSAGE} of {len(text):,} characters)"
        super().__init__(text)


class DataError(EdgeIntentError):
    """An event file (or data source) is missing, unreadable or violates the data contract."""


class SourceError(EdgeIntentError):
    """A data-source spec such as ``sim:1000:7`` or ``taobao:PATH`` cannot be understood."""


class SpecError(EdgeIntentError):
    """A FeatureSpec file is missing, malformed or of an unsupported version."""


class ConfigError(EdgeIntentError):
    """An option value is out of range or inconsistent with the others."""


class BundleError(EdgeIntentError):
    """A bundle directory is missing, incomplete, modified after it was written, or cannot be written."""


class ExportError(EdgeIntentError):
    """A model cannot be exported to (or run on) a target."""


class ShapeRefused(ExportError):
    """A fixed-shape artifact refuses an input its static shapes cannot take (e.g. a window longer than
    the ``max_len`` it was exported at): the one-line refusal the parity gate expects."""


class MilReferenceError(ExportError):
    """The MIL reference executor met something it cannot run."""


class MilRuntimeError(MilReferenceError):
    """An ML program failed at run time where the op definition says the device fails too
    (e.g. an out-of-range index under ``validate_indices=True``)."""


class EmulationError(EdgeIntentError):
    """The emulated device cannot be built or used (no root, apt or PyPI unreachable, not set up).

    ``reason`` is ``"root"`` (setup needs root), ``"network"`` (apt or PyPI unreachable),
    ``"setup"`` (not built yet) or ``"broken"``: tests skip on the first three only.
    """

    def __init__(self, message: str, reason: str = "broken") -> None:
        super().__init__(message)
        self.reason = reason


class MemoryBudgetError(EdgeIntentError):
    """A model needs more memory than the device profile's budget."""


class BenchError(EdgeIntentError):
    """A measuring process failed for a reason other than memory."""


class KitError(EdgeIntentError):
    """The phone kit cannot be built or run here (no C compiler), or a featurizer dump is malformed."""


class EngineError(EdgeIntentError):
    """A distributed engine (Ray) is missing, or one of its jobs failed or ran past its time limit."""
