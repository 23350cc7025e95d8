# `make course` runs the whole course; `make test` is what CI runs. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Offline machines with the course's data beside the checkout use it; otherwise torchvision downloads.
GANKIT_DATA ?= $(if $(wildcard ../shared/data/MNIST),$(abspath ../shared/data),)
export GANKIT_DATA

.PHONY: course test unit notebooks reports lint clean venv
.DEFAULT_GOAL := course

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -c "import torch, torchvision; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5); print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'ok')"
	@touch $@

venv: $(VENV)/.installed

## course: execute the four lessons in order (auto profile: full on a GPU, cpu otherwise), then export reports
course: venv
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=-1 --ExecutePreprocessor.kernel_name=python3 "$$nb" || exit 1; \
	done
	$(MAKE) reports

## test: unit tests, then strict nbval over the committed notebooks in the smoke profile
test: venv
	$(PY) -m pytest -q tests notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg

unit: venv
	$(PY) -m pytest -q tests

reports: venv
	$(VENV)/bin/gankit report --out reports
	$(PY) -c "from gankit.report import export_notebooks; import glob; export_notebooks(sorted(glob.glob('notebooks/[0-9][0-9]_*.ipynb')), 'reports')"

## lint: ruff (lint and format) over the package, tests, benchmarks and lesson sources; notebooks
## stored stripped and in agreement with their jupytext sources
LINTED := gankit tests benchmarks scripts conftest.py notebooks/[0-9][0-9]_*.py
lint: venv
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/nbstripout --keep-output --keep-count --verify $(NOTEBOOKS)
	$(PY) scripts/check_notebooks.py

clean:
	rm -rf $(VENV) .pytest_cache .test-runs
