# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: demo test fuzz bench clean

# torch==2.13.0 first: a bare `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.ready: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.ready
	$(PY) examples/run_demo.py

test: $(VENV)/.ready
	$(PY) -m pytest -q

# Coverage-guided fuzzing (atheris), each target for FUZZ_SECONDS in its own process (CI: 10,
# with a fixed seed). Longer: make fuzz FUZZ_SECONDS=300 FUZZ_JOBS=2 FUZZ_SEED=0 (0: random).
# Corpus and crashes: /tmp/safeart-fuzz.
FUZZ_SECONDS ?= 10
FUZZ_JOBS    ?= 1
FUZZ_SEED    ?= 1
fuzz: $(VENV)/.ready
	$(PY) -m tests.fuzz.run --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) --seed $(FUZZ_SEED)

# Benchmarks' smoke mode: tiny sizes, one repeat, no assertions on time. Full runs:
# python benchmarks/<name>.py (see benchmarks/README.md).
bench: $(VENV)/.ready
	$(PY) benchmarks/bench_metaflow.py --quick
	$(PY) benchmarks/bench_exported.py --quick
	$(PY) benchmarks/bench_scan.py --quick
	$(PY) benchmarks/bench_dataframe.py --quick
	$(PY) benchmarks/bench_audit.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
