# Entry points of the course. `make lab` for students, `make test` for CI and maintainers.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
# nbgrader runs helper scripts (alembic, jupyter) that must come from the course environment.
export PATH := $(BIN):$(PATH)

.PHONY: install lab test release lint clean

install: $(VENV)/.installed

# (Re)install when the pinned dependencies change; torch==2.13.0 is the CPU build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

# JupyterLab refuses to run as root unless told (containers, some lab machines).
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: install
	$(BIN)/jupyter lab $(LAB_ROOT_FLAG) --ServerApp.root_dir=. notebooks/01_calcul_de_gradients.ipynb

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile

release: install
	$(BIN)/autograder publier

lint: install
	$(BIN)/ruff check autograder tests nbgrader_config.py

clean:
	rm -rf $(VENV) submitted autograded feedback gradebook.db .pytest_cache
