"""The runtime simulator: device profiles, phone-like limits, runners per runtime, bench, projection.

- ``devices.py``    the device profiles (one table; sourced in devices.md)
- ``limits.py``     thread count, CPU affinity and address-space cap for a measuring process
- ``runners.py``    onnxruntime, MNN, torch eager, MIL reference (functional only) with one interface
- ``child.py``      the measuring process (one per variant)
- ``featurize.py``  the featurizer's share of a request
- ``project.py``    host → device projection (always labelled)
- ``bench.py``      ``edgeintent bench``: one table over targets × precisions
- ``emulation.py``  the emulated aarch64 environment (qemu user mode) for ``parity --device cpu-arm``
- ``arm_worker.py`` the ARM-side runner that emulated workers execute

Importing this package imports nothing heavy; the child process relies on that.
"""
