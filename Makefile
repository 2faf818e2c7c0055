# gptlab: `make lab` to learn, `make test` to check everything.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -c constraints.txt

.PHONY: install install-dev install-docs lab mine student slides book zh zh-check test-zh test test-quick test-numerics test-full \
	test-unit test-notebooks lint data bench clean mutants FORCE

# What each command installs, into one .venv, re-run only when the package list or the pins change:
#   make lab (and install, student, data, bench)  -> the course extra: what a learner needs
#   make test-quick, lint, mutants               -> + the dev extra (pytest, playwright, ruff)
#   make test, test-full                         -> + the dev and docs extras (the site and deck tests)
#   make slides, book                             -> + the docs extra (Jupyter Book 1)
install: $(VENV)/.course
install-dev: $(VENV)/.dev
install-docs: $(VENV)/.docs

# A .venv made by a Python older than 3.11 (gptlab uses tomllib) is rebuilt, saying why.
STALE := $(shell test -x $(PY) && $(PY) -c 'import sys; print("stale" if sys.version_info < (3, 11) else "")' 2>/dev/null)
define venv
	@if test -x $(PY) && ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	  echo "$(VENV) was made by Python $$($(PY) -c 'import platform; print(platform.python_version())'); gptlab needs 3.11 or newer: rebuilding it with $(PYTHON)"; \
	  rm -rf $(VENV); fi
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit("gptlab needs Python 3.11 or newer and $(PYTHON) is " + sys.version.split()[0] + ": install a newer one and run e.g. make lab PYTHON=python3.12") if sys.version_info < (3, 11) else None'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
endef

# pip shows its progress here: the first `make lab` downloads PyTorch and JupyterLab (a few minutes).
$(VENV)/.course: pyproject.toml constraints.txt $(if $(STALE),FORCE)
	$(venv)
	$(PY) -m pip install --quiet --upgrade pip
	$(PIP) -e ".[course]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

$(VENV)/.dev: $(VENV)/.course
	$(PIP) --quiet -e ".[course,dev]"
	touch $@

$(VENV)/.docs: $(VENV)/.course
	$(PIP) --quiet -e ".[course,docs]"
	touch $@

FORCE:

# JupyterLab rooted at the repository (so gptlab/*.py is one click away), opened on your copy of lesson 00.
# Your copies live in mine/ (git-ignored): the lessons with the exercises unsolved, made once and never
# overwritten (delete one to get the lesson's latest version); the solved lessons stay in notebooks/.
# make lab FAST=1: lessons train briefly (minutes -> seconds); a class on shared machines wants this.
# make lab LAB_ARGS="--no-browser --port 8890" on a remote machine. Root (containers) gets --allow-root.
# make lab LAB_OPEN=notebooks/00_setup_and_tour.ipynb opens the solved lessons instead.
LAB_ARGS ?=
FAST ?=
LAB_OPEN ?= mine/00_setup_and_tour.ipynb
lab: install mine
	$(if $(FAST),GPTLAB_FAST=$(FAST) )$(VENV)/bin/jupyter lab --ServerApp.root_dir=. $(LAB_OPEN) $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Your own working copies of the lessons in mine/, exercises unsolved (never overwrites a file there).
mine: install
	$(PY) tools/student.py --learner mine

# The student edition (solutions replaced by stubs) and per-lesson solution notebooks, in build/.
student: install
	$(PY) tools/student.py --out build

# Every lesson as a reveal.js deck (build/slides/NN_*.slides.html, opens offline; seconds per lesson),
# and the course website from the committed notebooks (build/book/_build/html; nothing is re-run).
# How to teach with them: docs/teaching.md.
slides: install-docs
	$(PY) tools/kit.py slides --out build/slides
	$(PY) tools/zh.py slides --out build/slides

# make book SOLUTIONS=1: each exercise's solution under a collapsed "Solution" toggle (default: none shown).
SOLUTIONS ?=
book: install-docs
	$(PY) tools/kit.py book --out build/book $(if $(SOLUTIONS),--solutions)
	$(PY) tools/zh.py site --out build/book $(if $(SOLUTIONS),--solutions)

# The Chinese edition (中文版): build/zh/NN_*.ipynb are the lessons' code and outputs with the Chinese prose of
# notebooks/zh/ (tools/zh.py; docs/glossary.md); `make zh-check` says which translation is missing or stale.
zh: install
	$(PY) tools/zh.py build --out build/zh
zh-check: install
	$(PY) tools/zh.py check

# The Chinese lessons through nbval in fast mode, like the English ones (same code; CI runs it after `make test`).
test-zh: install-dev zh
	GPTLAB_FAST=1 $(PY) -m pytest build/zh --nbval-lax --nbval-current-env -p no:cacheprovider

# Fast mode (the README's test command): every notebook trains briefly; about a few minutes on 2 cores.
test: install-dev install-docs
	GPTLAB_FAST=1 $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

# The unit tests without the slow, browser, docs and subprocess ones (markers: pyproject.toml): well under a
# minute on 2 cores, for the edit-test loop. `make test` still runs everything.
QUICK := not slow and not browser and not docs and not subprocess
test-quick: install-dev
	$(PY) -m pytest tests -m "$(QUICK)" -p no:cacheprovider

# The floating-point tests again with PyTorch's portable kernels (no AVX2/AVX-512): a result that holds only on
# one instruction set fails here, not on a learner's machine. CI runs it after `make test`.
test-numerics: install-dev
	ATEN_CPU_CAPABILITY=default $(PY) -m pytest tests -m numerics -p no:cacheprovider

# The full lessons, as committed (long: tens of minutes on a laptop CPU).
test-full: install-dev install-docs
	GPTLAB_FAST=0 $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

test-unit: install-dev
	$(PY) -m pytest tests

test-notebooks: install-dev
	GPTLAB_FAST=1 $(PY) -m pytest notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

# Style and the common bug patterns (ruff; configuration in pyproject.toml).
lint: install-dev
	$(PY) -m ruff check gptlab tests tools benchmarks

data: install
	$(PY) -m gptlab data fetch all

bench: install
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

# Mutation testing (by hand, not in CI; about 30 min): see docs/CONTRIBUTING.md. E.g. MUTANTS_ARGS="--sample 40 --seed 1".
MUTANTS_ARGS ?=
mutants: install-dev
	$(PY) tools/mutants.py $(MUTANTS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
