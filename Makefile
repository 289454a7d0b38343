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
# HAProxy waits an hour for a silent client by default, so held-open requests
# (slow headers or bodies) can use up the replicas' request slots.
export RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S ?= 30
# A stopping replica stays reachable this long behind HAProxy. Ray's 30 s
# default outlasts Serve's 30 s shutdown limit, which would kill replicas
# before they flush the prediction log.
export RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S ?= 5
# Throughput-optimized Serve keeps replica logs in a 1,000-record buffer and
# off the terminal, which would hide the start-up warnings, model loads and
# database outages. The service never logs per request, so write each one.
export RAY_SERVE_LOG_TO_STDERR ?= 1
export RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE ?= 1

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

# A local Ray cluster on 127.0.0.1 without the dashboard, which would add
# about 0.8 GiB of resident memory, and with metrics on a fixed port. Serve
# runs in the foreground; when it exits (Ctrl-C included), `ray stop` ends
# every Ray process of this user on the machine, and pkill the HAProxy that
# Ray starts, which a forced stop leaves running. A cluster left on RAY_PORT
# by an interrupted run is reused.
# NOTE: `ray stop --force` and the pkill also end other users' Ray clusters
# and HAProxy processes on a shared machine; the README's cluster section
# shows a `ray start --block` sequence that stops only its own processes.
RAY_PORT ?= 6390
METRICS_PORT ?= 8080

serve: install
	$(VENV)/bin/ray start --head --node-ip-address 127.0.0.1 --port $(RAY_PORT) \
		--include-dashboard=false --metrics-export-port $(METRICS_PORT) \
		--disable-usage-stats \
		|| echo "Ray already runs on port $(RAY_PORT); Serve will use it"
	trap 'exit 130' INT TERM; \
	trap '$(VENV)/bin/ray stop --force; pkill -f "[r]ay_haproxy/bin/haproxy"' EXIT; \
	$(VENV)/bin/serve run --address auto serve_config.yaml

run: model serve

test: install
	$(PY) -m pytest

# Refresh the pinned versions from the current environment.
lock: install
	$(PY) -m pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(LTV_STATE_DIR)
