"""The ``edgeintent`` command: one thin subcommand module per stage; the work lives in the library.

Bad input raises an :class:`~edgeintent.errors.EdgeIntentError`; the CLI prints its one line to
stderr and exits 2. Anything else is a bug and keeps its traceback.

How the package is wired (no import circles):

- :mod:`edgeintent.cli.common` defines the click group :func:`main` (its ``_Group`` turns
  ``EdgeIntentError`` into one line and exit 2; ``--version``), the consoles, the shared helpers
  (``print_json``, ``check_out_dir``, ``parse_options`` …) and the lazy click pieces
  (``LazyChoice``, ``lazy_option``) that build choices and help texts from the registries the first
  time they are needed. It imports no other module of this package.
- Each stage module (``data``, ``features``, ``train``, ``export``, ``quantize``, ``parity``,
  ``devices``, ``bench``, ``decide``, ``demo``, ``rank``) imports only ``edgeintent.cli.common`` and registers
  its commands on ``main`` with ``@main.command`` / ``@main.group`` when it is imported. A stage
  module never imports this ``__init__`` or another stage module; its report renderers live beside it.
- This ``__init__`` imports ``common`` and then every stage module, for their registrations, and
  re-exports ``main`` (``edgeintent = "edgeintent.cli:main"``; ``python -m edgeintent.cli`` runs
  ``__main__``).

Importing the CLI imports click, rich and the standard library, never torch: every toolkit import
sits inside the command (or help-text function) that needs it.
"""

from __future__ import annotations

from edgeintent.cli.common import main

# stage modules: importing one registers its commands on ``main``
from edgeintent.cli import bench, data, decide, demo, devices, export, features, parity, quantize, target, train  # noqa: F401
from edgeintent.cli import rank  # noqa: F401  (scenario coarse ranking)

__all__ = ["main"]
