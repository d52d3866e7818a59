# Two commands for a fresh machine with Python 3.11 and make: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-notebooks lint lab bench site site-test rehearsal gpu-check wheel clean

# --no-compile: byte-compiling every installed file (torch's thousands) took a third of the
# install (measured 200 s against 120 s); Python compiles the modules it imports, once, on first use.
$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --no-compile -r requirements-dev.txt -e .
	touch $(STAMP)

## The course's main job on shipped defaults: pictures in outputs/.
demo: $(STAMP)
	$(BIN)/bidsnet demo --out outputs

## Everything CI runs, in one pytest over two processes (pytest-xdist), a module or notebook at a
## time each (tests/conftest.py orders them): the notebooks with their exercises (nbval, in the
## checkout), the unit tests, and the site, rendered from the notebooks' executed copies. One torch
## thread: small-mode work is many tiny ops, and two threads that share two busy cores spin-wait on
## each other (measured 2-10x slower under load).
test: lint $(STAMP)
	OMP_NUM_THREADS=1 BIDSNET_SMALL=1 $(BIN)/pytest -q -n 2 --dist loadscope --no-loadscope-reorder \
		--durations=15 --nbval-lax tests notebooks

## The notebooks alone, top to bottom, with their exercises (notebooks/conftest.py).
test-notebooks: $(STAMP)
	OMP_NUM_THREADS=1 BIDSNET_SMALL=1 $(BIN)/pytest -q --nbval-lax notebooks

## The course as a website with outputs: build/site/html/index.html. Every notebook runs in small
## mode on the CPU in a bare install of the wheel (the Colab path), then Sphinx + myst-nb renders
## it (both from PyPI, offline; site/conf.py says why). Executed notebooks are reused while
## nothing they depend on changed.
site: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python tools/build_site.py

## Builds the site and opens every page in headless Chromium (tests/test_site.py).
site-test: $(STAMP)
	OMP_NUM_THREADS=1 BIDSNET_SMALL=1 $(BIN)/pytest -q -m site tests

## Every notebook top to bottom in FULL mode, in a bare install of the wheel, offline, with every
## training and evaluation loop cut to a few iterations (BIDSNET_REHEARSAL=1, bidsnet_lib.rehearsal()):
## wall time and peak memory per notebook in build/rehearsal/rehearsal.md; fails on an error or a
## peak above 12 GB (tools/rehearsal.py). One torch thread, as `make test` (why: above). On a GPU
## machine it rehearses the GPU path.
rehearsal: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python tools/rehearsal.py

## On a CUDA machine, unattended, within 9 minutes: the rehearsal on the GPU, the training step's
## timings, notebook 06's projected time here and on a T4, a few minutes of the default recipe
## exported; the report in build/gpu_check/report.md (tools/gpu_check.py). Fails at once without CUDA.
gpu-check: $(STAMP)
	$(BIN)/python tools/gpu_check.py

## The wheel a learner uploads to Colab when the install from the repository fails: dist/.
wheel: $(STAMP)
	$(BIN)/python tools/bare_install.py --wheel-only dist

lint: $(STAMP)
	$(BIN)/nbstripout --verify notebooks/*.ipynb
	$(BIN)/ruff check bidsnet_lib tests bench tools
	$(BIN)/nbqa ruff notebooks

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	$(BIN)/python bench/masks.py
	$(BIN)/python bench/attention.py
	$(BIN)/python bench/model.py
	$(BIN)/python bench/trainer.py

clean:
	rm -rf $(VENV) outputs build dist
