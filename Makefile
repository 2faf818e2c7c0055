# gptlab: `make lab` to learn, `make test` to check everything.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lab test test-unit test-notebooks data bench clean mutants

install: $(STAMP)

# Re-runs only when the package list or the pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[course,dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Extra options: make lab LAB_ARGS="--no-browser --port 8890". Root (containers, some VMs) needs --allow-root.
LAB_ARGS ?=
lab: install
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test: install
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

test-unit: install
	$(PY) -m pytest tests

test-notebooks: install
	$(PY) -m pytest notebooks --nbval-lax --nbval-current-env

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
