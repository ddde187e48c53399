# RepLens: `make demo` serves the demo on the embedded default; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --quiet --disable-pip-version-check
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/replens
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
DEMO_URL ?= http://127.0.0.1:8000

.PHONY: demo test lint benchmark clean lock

# Every install takes the versions requirements.lock pins (`make lock` renews it).
# The demo needs the Python client too: its training run logs checkpoints with it.
$(VENV)/.installed: pyproject.toml requirements.lock client/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch first, pinned to the CPU build: an unpinned torch pulls gigabytes of CUDA packages.
	$(PIP) install torch==2.13.0
	$(PIP) install -c requirements.lock -e ".[demo]"
	$(PIP) install -c requirements.lock -e ./client
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -c requirements.lock -e ".[test]"
	touch $@

# Resolve every dependency afresh in a throwaway environment and pin what it installed.
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/pip install --quiet torch==2.13.0
	.venv-lock/bin/pip install --quiet -e ".[test]" -e ./client
	{ echo "# Versions every install takes (pip -c): make, CI and docker/Dockerfile. Renew: make lock"; \
	  .venv-lock/bin/pip freeze --exclude-editable | sed 's/^torch==.*/torch==2.13.0/'; } > requirements.lock
	rm -rf .venv-lock

# The front-end checks' tools (package.json: TypeScript, ESLint), exactly as package-lock.json pins them.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

demo: $(VENV)/.installed
	$(PY) manage.py demo

test: $(VENV)/.installed-test
	node --test tests/js/
	# Against the PostgreSQL and Redis at these URLs; where none answers, throwaway ones.
	REPLENS_VAR_DIR=$(CURDIR)/var/test $(PY) -m tests.services \
		$(TEST_DATABASE_URL) $(TEST_BROKER_URL) -- $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test node_modules/.installed
	npx --no-install tsc -p jsconfig.json
	npx --no-install eslint static/js tests/js
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf var staticfiles test-artifacts

benchmark: $(VENV)/.installed-test
	$(PY) -m tests.benchmarks.bench_foundation
	$(PY) -m tests.benchmarks.bench_extraction
	$(PY) -m tests.benchmarks.bench_measures
	$(PY) -m tests.benchmarks.bench_explorer
	$(PY) -m tests.benchmarks.bench_probes
	$(PY) -m tests.benchmarks.bench_host
	$(PY) -m tests.benchmarks.bench_weights
	$(PY) -m tests.benchmarks.bench_stitching
	$(PY) -m tests.benchmarks.bench_dynamics
	$(PY) -m tests.benchmarks.bench_cca
	$(PY) -m tests.benchmarks.bench_rsa
	# Cold loads of the heatmap pages, against the demo that `make demo` serves (if one runs).
	$(PY) -m tests.benchmarks.bench_pages --base $(DEMO_URL)
