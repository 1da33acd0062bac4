# Entry points of the course. `make lab` for students, `make test` for CI and maintainers.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
# nbgrader runs helper scripts (alembic, jupyter) that must come from the course environment.
export PATH := $(BIN):$(PATH)

.PHONY: install lab-config system-deps sandbox lab lab-instructor test release lint clean

install: $(VENV)/.installed lab-config

# (Re)install when the pinned dependencies change; torch==2.13.0 is the CPU build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

# JupyterLab as students meet it, written into the environment (any prefix: `make lab-config VENV=$CONDA_PREFIX`):
# - jupyter/share/…/overrides.d/cours-autograd.json: French interface (language pack fr_FR), no news pop-up;
# - jupyter/etc/jupyter/labconfig/page_config.json and jupyter_server_config.json: nbgrader's instructor-side
#   extensions (formgrader, create assignment, course and assignment lists) off; « Validate » stays.
lab-config:
	@mkdir -p $(VENV)
	cp -R jupyter/etc jupyter/share $(VENV)/

# JupyterLab refuses to run as root unless told (containers, some lab machines).
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
# Extra options, e.g. make lab LAB_ARGS="--no-browser --port=8899"; LAB_ROOT: the folder served (the browser
# tests serve a temporary copy of the course, so that running and saving notebooks never touches the repository).
LAB_ARGS ?=
LAB_ROOT ?= .

lab: install
	$(BIN)/jupyter lab $(LAB_ROOT_FLAG) --ServerApp.root_dir=$(LAB_ROOT) $(LAB_ARGS) $(LAB_ROOT)/notebooks/00_sommaire.ipynb

# The same JupyterLab with nbgrader's instructor extensions back (formgrader, create assignment…).
lab-instructor: install
	JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter/instructor \
	  $(BIN)/jupyter lab $(LAB_ROOT_FLAG) --ServerApp.root_dir=$(LAB_ROOT) $(LAB_ARGS)

# System packages (Debian/Ubuntu): bubblewrap isolates student code during grading (`autograder grade`),
# chromium drives the browser tests (fonts-noto-color-emoji: ✅ ❌ in their screenshots), hunspell + hunspell-fr
# check the French spelling of the notebooks. Installed when we can (root and apt-get), else a French warning.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	command -v hunspell >/dev/null 2>&1 || missing="$$missing hunspell"; \
	[ -e /usr/share/hunspell/fr_FR.dic ] || missing="$$missing hunspell-fr"; \
	[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing="$$missing fonts-noto-color-emoji"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installation des paquets système :$$missing (navigateur des tests, bac à sable, orthographe)…"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq $$missing >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null && apt-get install -y -qq $$missing >/dev/null; } || \
	    echo "⚠️  L'installation de$$missing a échoué : les tests qui en dépendent seront ignorés (ou échoueront en CI)."; \
	else \
	  echo "⚠️  Paquets système absents :$$missing. Installez-les (sudo apt install$$missing) :" \
	       "chromium pour les tests dans le navigateur, bubblewrap pour corriger les copies dans un bac à sable," \
	       "hunspell et hunspell-fr pour la vérification de l'orthographe, fonts-noto-color-emoji pour les captures d'écran."; \
	fi

sandbox: system-deps

test: install system-deps
	$(BIN)/python -m pytest -n 2 --dist loadfile

release: install
	$(BIN)/autograder publier

lint: install
	$(BIN)/ruff check autograder tests nbgrader_config.py

clean:
	rm -rf $(VENV) submitted autograded feedback gradebook.db .pytest_cache tests/artifacts
