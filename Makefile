# RepLens: `make demo` serves the demo on the embedded default; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --quiet --disable-pip-version-check
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/replens
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

.PHONY: demo test lint benchmark clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch first, pinned to the CPU build: an unpinned torch pulls gigabytes of CUDA packages.
	$(PIP) install torch==2.13.0
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed client/pyproject.toml
	$(PIP) install -e ".[test]"
	$(PIP) install -e ./client
	touch $@

# The front-end checks' tools (package.json: TypeScript, ESLint), exactly as package-lock.json pins them.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

demo: $(VENV)/.installed
	$(PY) manage.py demo

test: $(VENV)/.installed-test
	node --test tests/js/
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
		REPLENS_VAR_DIR=$(CURDIR)/var/test $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test node_modules/.installed
	npx --no-install tsc -p jsconfig.json
	npx --no-install eslint static/js tests/js
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf var staticfiles test-artifacts

benchmark: $(VENV)/.installed-test
	$(PY) -m tests.benchmarks.bench_foundation
	$(PY) -m tests.benchmarks.bench_measures
	$(PY) -m tests.benchmarks.bench_explorer
	$(PY) -m tests.benchmarks.bench_probes
	$(PY) -m tests.benchmarks.bench_host
