"""``python -m edgeintent.cli``."""

from __future__ import annotations

from edgeintent.cli import main

main()
