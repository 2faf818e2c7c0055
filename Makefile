# gptlab: `make lab` to learn, `make test` to check everything.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lab mine student slides book test test-full test-unit test-notebooks data bench clean mutants

install: $(STAMP)

# Re-runs only when the package list or the pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[course,dev,docs]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

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
slides: install
	$(PY) tools/kit.py slides --out build/slides

# make book SOLUTIONS=1: each exercise's solution under a collapsed "Solution" toggle (default: none shown).
SOLUTIONS ?=
book: install
	$(PY) tools/kit.py book --out build/book $(if $(SOLUTIONS),--solutions)

# Fast mode (the README's test command): every notebook trains briefly; about a few minutes on 2 cores.
test: install
	GPTLAB_FAST=1 $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

# The full lessons, as committed (long: tens of minutes on a laptop CPU).
test-full: install
	GPTLAB_FAST=0 $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

test-unit: install
	$(PY) -m pytest tests

test-notebooks: install
	GPTLAB_FAST=1 $(PY) -m pytest notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

data: install
	$(PY) -m gptlab data fetch all

bench: install
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

# Mutation testing (by hand, not in CI; about 30 min): see docs/CONTRIBUTING.md. E.g. MUTANTS_ARGS="--sample 40 --seed 1".
MUTANTS_ARGS ?=
mutants: install
	$(PY) tools/mutants.py $(MUTANTS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
