"""The phone kit: a portable C99 featurizer and decision rule, its binary spec, and the checks.

- ``c/kit.h``, ``c/kit.c``: the library an app compiles in (no dependencies, no allocation after
  ``kit_open``); ``c/kit_conform.c``: the conformance runner; ``c/kit_fuzz.c``: the fuzz driver;
- :mod:`~edgeintent.kit.spec`: the binary spec (``spec.bin``), the cases file a runner replays
  (``cases.bin``) and the output it writes (``--featurizer-dump`` reads the same format);
- :mod:`~edgeintent.kit.build`: compiling with the host C compiler or the aarch64 cross compiler, and
  running the result (natively, or under the cpu-arm qemu);
- :mod:`~edgeintent.kit.conformance`: bit-for-bit comparison of a runner's output with the ids Python
  made of the bundle's raw golden events;
- :mod:`~edgeintent.kit.bench`: the kit's time for one request (bench's featurizer row);
- :mod:`~edgeintent.kit.native`: the library loaded with ctypes (the decision rule, as an app calls it).

Torch-free: the kit sits on the exporters floor (the ``kit`` target writes it into a bundle).
"""

from __future__ import annotations

from pathlib import Path

C_DIR = Path(__file__).resolve().with_name("c")
#: what an app compiles in
LIBRARY = ("kit.h", "kit.c")
RUNNER = "kit_conform.c"
FUZZER = "kit_fuzz.c"
