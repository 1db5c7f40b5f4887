# The two set-up commands: `make demo` runs the example home, `make test` runs every test.
# Each creates the virtual environment when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# The adapters compiled with mypyc (hub/native.py), again whenever one of them changed.
$(VENV)/.compiled: $(BIN)/.installed hub/native.py hub/trusted.py hub/mqttframe.py hub/registry.py hub/reports.py $(wildcard hub/adapters/*.py)
	$(BIN)/python tools/compile-adapters
	touch $@

demo: $(BIN)/.installed
	HUB_DATA_DIR=$${HUB_DATA_DIR:-var/demo} $(BIN)/hub demo -c devices.yaml

test: $(VENV)/.compiled
	tools/ensure-binaries
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check hub tests bench
	$(BIN)/ruff format --check hub tests bench
	$(BIN)/mypy hub bench
	$(BIN)/lint-imports

# Every benchmark in bench/ (each prints a table and its figures beside their baselines).
bench: $(VENV)/.compiled
	@set -e; for b in bench/*.py; do case $$b in */__init__.py|*/common.py|*/bare_consumer.py|*/relay.py) continue;; esac; \
	  echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache hub/*.so hub/adapters/*.so
