"""User-facing errors: one line, actionable. The CLI prints ``str(err)`` and exits 2.

Anything that is *not* an ``EdgeIntentError`` is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeIntentError(Exception):
    """Base class for every error caused by bad input or an impossible request."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # Keep the message on one line whatever the cause carried.
        super().__init__(" ".join(str(message).split()))


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


class MilReferenceError(ExportError):
    """The MIL reference executor met something it cannot run."""


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
