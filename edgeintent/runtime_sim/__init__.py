"""The runtime simulator: device profiles, bench under a profile's limits, projection to the phone.

- ``devices.py``  the device profiles (one registry; sourced in devices.md)
- ``bench.py``    ``edgeintent bench``: one table over targets × precisions, each measured in a fresh
  process of ``edgeintent.runtimes.child`` under the profile's limits (``edgeintent.runtimes.limits``)
- ``project.py``  host → device projection (always labelled)
- ``report.py``   the bench report as a table and summary lines

Importing this package imports nothing heavy.
"""
