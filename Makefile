# The two commands of the README: `make demo` and `make test`. Both set up a project-local
# virtual environment with plain pip first (torch comes from the machine's wheel cache).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))

.PHONY: install test demo refresh-demo bench clean

$(VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev,plot,ray,data]' $(foreach p,$(PLUGINS),-e $(p))
	$(PY) -m pip install -q 'snntorch==1.0.0' 'norse==1.1.0' 'tonic==1.7.0'
	# Sinabs 3.1.3 pins nir<=1.0.4 and samna (its chip SDK, unused here), which would downgrade nir:
	# installed without dependencies; what `import sinabs` needs is in plugins/nirbridge-sinabs/pyproject.toml
	$(PY) -m pip install -q --no-deps 'sinabs==3.1.3'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m ruff check --quiet src plugins tests benchmarks
	$(PY) -m pytest -q -ra

demo: install
	$(PY) -m benchmarks.transfer

# the deliberate refresh of the demo's committed results (benchmarks/results, docs/img)
refresh-demo: install
	$(PY) -m benchmarks.transfer --results benchmarks/results

# the deliberate refresh of benchmarks/results/ (the benchmarks print only, unless --write)
bench: install
	$(PY) benchmarks/bench_io.py
	$(PY) -m benchmarks.bench_simulator --write
	$(PY) -m benchmarks.bench_memory --write
	$(PY) -m benchmarks.bench_large_graph --write
	$(PY) -m benchmarks.bench_torch
	PYTHONHASHSEED=0 $(PY) -m benchmarks.naive_nir_functions --write

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
