# The README's two commands: `make run` and `make test`.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# MLflow's SQLite store, its artifacts and the generated sample live here.
export LTV_STATE_DIR ?= $(CURDIR)/.ltv
# HAProxy in front of the replicas' own HTTP ports instead of Serve's default
# proxy: about 8x the requests per second on 2 cores (see BENCHMARKS.md).
export RAY_SERVE_ENABLE_HA_PROXY ?= 1
export RAY_SERVE_THROUGHPUT_OPTIMIZED ?= 1
# Ray starts its workers at nice 15; at 0 the replicas keep their share of
# the CPU when a load generator or other work runs on the same machine.
export RAY_worker_niceness ?= 0

.PHONY: install model train export run serve test lock clean

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(INSTALLED)

install: $(INSTALLED)

train: install
	$(PY) -m training

export: install
	$(PY) -m export

model: train export

serve: install
	$(VENV)/bin/serve run serve_config.yaml

run: model serve

test: install
	$(PY) -m pytest

# Refresh the pinned versions from the current environment.
lock: install
	$(PY) -m pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(LTV_STATE_DIR)
