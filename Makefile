# Two commands on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch is pinned here, before the project, so pip takes the CPU wheel on disk and an
# open range in pyproject.toml cannot pull a multi-GB CUDA build.
TORCH   := torch==2.13.0
# LiteRT's converter (litert-torch: jax, transformers, a typing_extensions/pydantic pin) in a side venv
# with its own torch; the exporter runs it in a subprocess (edgeintent/exporters/litert.py)
LITERT_VENV  := .venv-litert
LITERT_STAMP := $(LITERT_VENV)/.installed
LITERT_TORCH := litert-torch==0.10.0

.PHONY: demo test setup bench arm-setup bench-arm docs docs-results clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[mnn,dev,ray,docs,executorch,litert]'
	touch $(STAMP)

$(LITERT_STAMP):
	$(PY) -m venv $(LITERT_VENV)
	$(LITERT_VENV)/bin/pip install --quiet $(TORCH) $(LITERT_TORCH)
	touch $(LITERT_STAMP)

setup: $(STAMP) $(LITERT_STAMP)

demo: $(STAMP) $(LITERT_STAMP)
	$(BIN)/edgeintent demo

# one pytest worker per CPU, a test file's tests on one worker (the cpu-arm environment is built by
# one process; module fixtures are set up once). Not --dist loadgroup: with pytest 9.2 it silently
# stops grouping (pytest-xdist#1386). --no-loadscope-reorder keeps the files in the order conftest.py
# gives them (the slowest first); by default xdist hands them out by number of tests, which put the
# slowest file last.
# The two venvs are independent: built side by side (-j2), nothing else in parallel.
test:
	$(MAKE) --no-print-directory -j2 setup
	$(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python benchmarks/featurize.py --json
	$(BIN)/python benchmarks/runtimes.py --json

# cpu-arm: qemu + arm64 Debian python + aarch64 onnxruntime/MNN in ~/.cache/edgeintent/cpu-arm (root, once),
# and the aarch64 cross compiler the phone kit is built with (gcc-aarch64-linux-gnu, with the host tools).
# `make test` builds it too when it is missing (tests/test_emulation.py); it skips only without root or network.
arm-setup: $(STAMP)
	$(BIN)/edgeintent devices setup cpu-arm

bench-arm: $(STAMP)
	$(BIN)/python benchmarks/arm_parity.py --json

# the docs site into site/ (warnings are errors; tests/test_docs.py builds it in make test)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# re-run the benchmarks whose tables the docs include (docs/results/NAME.json + NAME.md); slow, not in make test
DOCS_RESULTS := featurize simulate allocation kit_featurizer runtimes arm_kernels
docs-results: $(STAMP)
	for b in $(DOCS_RESULTS); do $(BIN)/python benchmarks/$$b.py --write-results || exit 1; done

clean:
	rm -rf $(VENV) $(LITERT_VENV) build site *.egg-info .pytest_cache
