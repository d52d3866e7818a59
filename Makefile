# Two commands for a fresh machine with Python 3.11 and make: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint lab bench clean

$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-dev.txt -e .
	touch $(STAMP)

## The course's main job on shipped defaults: pictures in outputs/.
demo: $(STAMP)
	$(BIN)/python -m bidsnet_lib.demo --out outputs

## Everything CI runs.
test: lint $(STAMP)
	BIDSNET_SMALL=1 $(BIN)/pytest -q tests
	BIDSNET_SMALL=1 $(BIN)/pytest -q --nbval-lax notebooks

lint: $(STAMP)
	$(BIN)/nbstripout --verify notebooks/*.ipynb
	$(BIN)/ruff check bidsnet_lib tests bench tools
	$(BIN)/nbqa ruff notebooks

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	$(BIN)/python bench/masks.py

clean:
	rm -rf $(VENV) outputs
