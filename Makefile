# The two commands: `make run` (serve on the embedded SQLite default) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

.PHONY: install run test bench lint clean

$(RUNTIME): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' || \
		{ echo "f8a-jobs needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(DEV): $(RUNTIME) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(RUNTIME)

# On the embedded default, first the demo tables the $filter examples read (f8a-jobs demo:
# idempotent; it changes nothing where they hold other data, and serve starts anyway).
run: $(RUNTIME)
	-@[ -n "$$F8A_JOBS_DATABASE_URL$$F8A_JOBS_FILTER_DATABASE_URL" ] || $(BIN)/f8a-jobs demo
	$(BIN)/f8a-jobs serve

test: $(DEV)
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(DEV)
	$(BIN)/python -m bench

lint: $(DEV)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q --noconftest -p no:xdist tests/test_structure.py tests/test_docs.py
	$(BIN)/ruff check f8a_jobs tests bench examples
	$(BIN)/ruff format --check f8a_jobs
	$(BIN)/mypy f8a_jobs
	$(BIN)/mypy --strict f8a_jobs/client

clean:
	rm -rf $(VENV) f8a_jobs.db f8a_jobs.db-* f8a_jobs.db.*.lock
