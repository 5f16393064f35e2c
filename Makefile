# RFT Console. `make up` starts the console; `make test` runs every test. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The libraries reward code may import, in their own directory (never the console's site-packages);
# the sandbox shows them read-only at /opt/reward-libs.
REWARD_LIBS := $(VENV)/reward-libs
REWARD_LIB_PACKAGES := numpy sympy

.PHONY: up test test-reliability lint format clean-venv

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e ".[dev]"
	$(PY) -m pip install --quiet --upgrade -c requirements.lock --target $(REWARD_LIBS) $(REWARD_LIB_PACKAGES)
	touch $(STAMP)

up: $(STAMP)
	$(PY) manage.py up

# The starter model is built (once, ~4 minutes on 2 cores, then cached in .cache/starter) before
# pytest starts, so that no test's time limit includes it.
STARTER := DJANGO_SETTINGS_MODULE=tests.settings $(PY) manage.py bootstrap_starter --build-only --no-progress

test: $(STAMP)
	$(STARTER)
	$(PY) -m pytest

# Faults, load, hostile code, bad input and the privacy sweep (all also in `make test`), with their
# reports (what was tried, what was lost) printed and saved under reports/ for RELIABILITY.md.
test-reliability: $(STAMP)
	$(STARTER)
	RFT_REPORT_DIR=reports $(PY) -m pytest -m reliability

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

# GPU hosts: vLLM and DeepSpeed (the `gpu` extra). Not constrained by requirements.lock: vLLM
# brings its own torch (CUDA) and transformers pins. Never part of `make up` or `make test`.
.PHONY: gpu-extras
gpu-extras: $(STAMP)
	$(PY) -m pip install -e ".[gpu]"

clean-venv:
	rm -rf $(VENV)

# The production path: PostgreSQL + an external Redis (both must be running; see README "Scale out").
# The browser tests start their own console like `make up` (embedded), so `make test` covers them.
PRODUCTION_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/rftconsole
PRODUCTION_REDIS_URL ?= redis://127.0.0.1:6379/7

.PHONY: test-production
test-production: $(STAMP)
	psql "$(PRODUCTION_DATABASE_URL)" -c "select 1" >/dev/null 2>&1 || createdb -h 127.0.0.1 -U postgres rftconsole
	$(STARTER)
	DATABASE_URL="$(PRODUCTION_DATABASE_URL)" REDIS_URL="$(PRODUCTION_REDIS_URL)" $(PY) -m pytest -m "not browser"

# Benchmarks (bench/README.md): every figure of the benchmarks issues, in about 45 minutes on 2 cores
# (the effectiveness figure trains 6 jobs: 2 tasks x 3 seeds).
.PHONY: bench
bench: $(STAMP)
	$(PY) bench/run_all.py
