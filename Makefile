# Entry points of the course. `make lab` for students, `make test` for CI and maintainers.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
# nbgrader runs helper scripts (alembic, jupyter) that must come from the course environment.
export PATH := $(BIN):$(PATH)

.PHONY: help install lab-config system-deps sandbox lab lab-instructor test test-rapide release lint format types clean

# `make` seul affiche l'aide. Chaque cible documentée porte un commentaire « ## » lu par `make help`.
help: ## Affiche cette aide
	@echo "Cibles du cours (make <cible>) :"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)$$/  \1\t\2/' | expand -t 18

install: $(VENV)/.installed lab-config ## Installe l'environnement .venv (versions épinglées, PyTorch pour processeur)

# (Re)install when the pinned dependencies change; torch==2.13.0 is the CPU build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

# JupyterLab as students meet it, written into the environment (any prefix: `make lab-config VENV=$CONDA_PREFIX`):
# - jupyter/share/…/overrides.d/cours-autograd.json: French interface (language pack fr_FR), no news pop-up;
# - jupyter/etc/jupyter/labconfig/page_config.json and jupyter_server_config.json: nbgrader's instructor-side
#   extensions (formgrader, create assignment, course and assignment lists) off; « Validate » stays.
lab-config: ## Configure JupyterLab pour le cours (français, extensions étudiantes) dans VENV
	@mkdir -p $(VENV)
	cp -R jupyter/etc jupyter/share $(VENV)/

# JupyterLab refuses to run as root unless told (containers, some lab machines).
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
# Extra options, e.g. make lab LAB_ARGS="--no-browser --port=8899"; LAB_ROOT: the folder served (the browser
# tests serve a temporary copy of the course, so that running and saving notebooks never touches the repository).
LAB_ARGS ?=
LAB_ROOT ?= .

lab: install ## Ouvre le cours dans JupyterLab (commande étudiante du README)
	$(BIN)/jupyter lab $(LAB_ROOT_FLAG) --ServerApp.root_dir=$(LAB_ROOT) $(LAB_ARGS) $(LAB_ROOT)/notebooks/00_sommaire.ipynb

# The same JupyterLab with nbgrader's instructor extensions back (formgrader, create assignment…).
lab-instructor: install ## Ouvre JupyterLab avec les extensions enseignantes de nbgrader (Formgrader…)
	JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter/instructor \
	  $(BIN)/jupyter lab $(LAB_ROOT_FLAG) --ServerApp.root_dir=$(LAB_ROOT) $(LAB_ARGS)

# System packages (Debian/Ubuntu): bubblewrap isolates student code during grading (`autograder grade`),
# chromium drives the browser tests (fonts-noto-color-emoji: ✅ ❌ in their screenshots), hunspell + hunspell-fr
# check the French spelling of the notebooks. Installed when we can (root and apt-get), else a French warning.
system-deps: ## Installe les paquets Debian des tests (chromium, bubblewrap, hunspell-fr, police emoji)
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || [ -x "$${CHROMIUM:-}" ] || missing="$$missing chromium"; \
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

sandbox: system-deps ## Alias de system-deps (bac à sable de la correction)

# The README's test command and CI: lint and types first (fail fast), then the whole suite.
test: install lint types system-deps ## Vérifie le style et les types, puis lance toute la suite de tests (la CI)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not deploiement"
	$(BIN)/python -m pytest -m deploiement -s -q

# The edit-test loop: no browser, no system packages, no nbgrader round trip, no whole-notebook run.
FAST_MARKERS := not browser and not grading and not notebooks and not system and not deploiement
test-rapide: install ## Tests rapides pour le travail quotidien (< 2 min : sans navigateur ni nbgrader)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "$(FAST_MARKERS)" -q

release: install ## Régénère release/ (versions étudiantes) depuis source/ avec nbgrader
	$(BIN)/autograder publier

# The same tools and versions as .pre-commit-config.yaml (tests/test_project_habits.py checks the pins).
NOTEBOOKS := $(wildcard notebooks/*.ipynb source/*/*.ipynb release/*/*.ipynb)
PY_SOURCES := autograder tests benchmarks deploiement nbgrader_config.py
lint: install ## Style : ruff (règles et format), codespell, notebooks sans sorties, actionlint
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/codespell $(PY_SOURCES)
	$(BIN)/nbstripout --keep-id --verify $(NOTEBOOKS)
	$(BIN)/actionlint

format: install ## Reformate le code Python (ruff) et retire les sorties des notebooks
	$(BIN)/ruff check --fix $(PY_SOURCES)
	$(BIN)/ruff format $(PY_SOURCES)
	$(BIN)/nbstripout --keep-id $(NOTEBOOKS)

types: install ## Vérifie les types du cœur de la vérification (mypy)
	$(BIN)/mypy

clean: ## Supprime .venv et les sorties de correction locales
	rm -rf $(VENV) submitted autograded feedback gradebook.db .pytest_cache tests/artifacts
