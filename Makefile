# The README's two commands: `make run` and `make test`.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# MLflow's SQLite store, its artifacts and the generated sample live here.
export LTV_STATE_DIR ?= $(CURDIR)/.ltv

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
