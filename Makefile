# Entry points of the course. `make lab` for students, `make test` for CI and maintainers.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
# nbgrader runs helper scripts (alembic, jupyter) that must come from the course environment.
export PATH := $(BIN):$(PATH)

.PHONY: install sandbox lab test release lint clean

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

# bubblewrap isolates student code during grading (`autograder grade`): installed when we can, else a warning.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installation de bubblewrap (bac à sable de la correction)…"; \
	    apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null; }; \
	  else \
	    echo "⚠️  bubblewrap est absent : installez le paquet « bubblewrap » (sudo apt install bubblewrap)" \
	         "pour corriger les copies dans un bac à sable."; \
	  fi; }

test: install sandbox
	$(BIN)/python -m pytest -n 2 --dist loadfile

release: install
	$(BIN)/autograder publier

lint: install
	$(BIN)/ruff check autograder tests nbgrader_config.py

clean:
	rm -rf $(VENV) submitted autograded feedback gradebook.db .pytest_cache
