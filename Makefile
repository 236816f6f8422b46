# Two commands: `make install` (venv, dependencies, model build) and `make test`; `make lint`, `make test-fast` beside them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser test test-fast lint bench

install: browser
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[serve,export,int8,dev,bench,docs]'
	$(BIN)/videoapi model build

# The web page's test drives a real Chromium: Debian's package (set VIDEOAPI_CHROMIUM to use another).
browser:
	@command -v chromium >/dev/null || [ -n "$$VIDEOAPI_CHROMIUM" ] || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

# Two lanes at once, a pytest-xdist worker each (tests/lanes.py): the fault tests and what shares their stacks in
# one, the rest in the other. Run one after another, the suite kept 2 cores 44% busy.
test:
	$(BIN)/python -m pytest -n 2

# The tests not marked slow (no whole stack, no Celery worker): a few minutes.
test-fast:
	$(BIN)/python -m pytest -m "not slow"

# The same checks as CI and the pre-commit hooks: ruff (lint, format), mypy (strict), the import contracts.
lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The documentation site (mkdocs.yml, docs/) into site/: any warning fails it (a broken link or anchor, a page
# left out of the nav, a docstring griffe cannot read). NO_MKDOCS_2_WARNING: no banner about Material's successor.
.PHONY: docs
docs:
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

bench:
	$(BIN)/python bench/inference.py

# `sam build` (BuildMethod: makefile): each function gets the package and its runtime dependencies, not the model
# (the API never runs it; VIDEOAPI_BUILD_WITHOUT_MODEL: setup.py).
LAMBDA_PIP = $(PYTHON) -m pip install --quiet --target "$(ARTIFACTS_DIR)" --platform manylinux2014_x86_64 --only-binary=:all: --python-version 3.11

build-UploadFunction build-JobsFunction build-S3TriggerFunction build-WebFunction:
	VIDEOAPI_BUILD_WITHOUT_MODEL=1 $(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir "$(ARTIFACTS_DIR)/.wheel" .
	$(LAMBDA_PIP) "$(ARTIFACTS_DIR)"/.wheel/*.whl
	rm -rf "$(ARTIFACTS_DIR)/.wheel" "$(ARTIFACTS_DIR)/local"  # the emulator (local/) is not shipped to Lambda

# The sdist and the wheel, the built model inside (setup.py; `videoapi model build` first, as `make install` does):
# `pip install 'dist/videoapi-0.1.0-py3-none-any.whl[engine]'` detects with no torch and no clone, and the
# images install it (infra/docker/). The venv's setuptools builds it: nothing is downloaded.
.PHONY: wheel
wheel:
	rm -f dist/videoapi-*
	$(BIN)/python -m build --no-isolation --outdir dist .
