# make test    : virtual environment (created if missing), install, pytest
# make report  : the full default pipeline (papermill notebooks -> images/, report/); QUICK=1 for a ~1 minute run
# make bench   : the training-speed benchmark
# make notebooks : regenerate every notebooks/*.ipynb from its jupytext source notebooks/*.py
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export MNIST_DATA_DIR ?= ../shared/data

.PHONY: test report bench notebooks venv system-deps clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

venv: $(VENV)/.installed

# xelatex + pandoc for nbconvert's PDF, pdftotext for the report test; Debian packages, offline-capable here.
system-deps:
	@bash scripts/system-deps.sh

test: venv system-deps
	$(PY) -m pytest -q

report: venv system-deps
	$(PY) -m mnist_lib report $(if $(QUICK),--quick,)
	$(if $(QUICK),,$(PY) -m mnist_lib readme)

bench: venv
	$(PY) -m mnist_lib bench --out report/bench.json
	$(PY) -m mnist_lib readme

# The notebooks' source is notebooks/<name>.py (jupytext percent format); the paired .ipynb is
# regenerated from it, keeping its cell ids (--update), never the other way round.
notebooks: venv
	$(VENV)/bin/jupytext --to ipynb --update notebooks/*.py

clean:
	rm -rf runs notebooks/executed
