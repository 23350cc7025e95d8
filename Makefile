# `make course` runs the whole course in build/course/ and leaves the checkout as it was; `make test`
# is what CI runs. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# The learner's executed lessons and their reports (build/ is git-ignored)
COURSE_DIR ?= build/course
DIST_DIR ?= build/dist
# `make reports` exports the executed lessons in LESSONS and writes everything to REPORTS
LESSONS ?= notebooks
REPORTS ?= reports
# How the lessons are executed: one plain line per epoch instead of a progress widget, no time limit,
# kernels over IPC (a TCP kernel warns "Kernel is running over TCP without encryption") with their
# sockets at an absolute path (the kernel runs in the notebook's folder, nbconvert in this one).
EXECUTE = GANKIT_PROGRESS=epochs $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	--ExecutePreprocessor.timeout=-1 --ExecutePreprocessor.kernel_name=python3 \
	--KernelManager.transport=ipc --KernelManager.ip=$${TMPDIR:-/tmp}/gankit-kernel-$$$$
# Offline machines with the course's data beside the checkout use it; otherwise torchvision downloads.
GANKIT_DATA ?= $(if $(wildcard ../shared/data/MNIST),$(abspath ../shared/data),)
export GANKIT_DATA

.PHONY: course test unit notebooks reports dist student lint clean venv
.DEFAULT_GOAL := course

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -c "import torch, torchvision; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5); print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'ok')"
	@touch $@

venv: $(VENV)/.installed

## course: execute copies of the four lessons in order in build/course/ (auto profile: full on a GPU,
## cpu otherwise), then write the progress report and the exports to build/course/reports/
course: venv
	@mkdir -p $(COURSE_DIR)
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb -> $(COURSE_DIR)/$$(basename $$nb)"; \
		cp "$$nb" $(COURSE_DIR)/ && $(EXECUTE) "$(COURSE_DIR)/$$(basename $$nb)" || exit 1; \
	done
	$(PY) scripts/widget_fallbacks.py $(addprefix $(COURSE_DIR)/,$(notdir $(NOTEBOOKS)))
	$(MAKE) --no-print-directory reports LESSONS=$(COURSE_DIR) REPORTS=$(COURSE_DIR)/reports
	@echo "executed lessons in $(COURSE_DIR)/; reports: $(COURSE_DIR)/reports/index.html"

## notebooks (maintainers): re-execute the committed lessons in place with the cpu profile (set
## GANKIT_PROFILE to change it) and strip them; then `make reports lint`, check the observation cells
## against the new outputs, and commit each .ipynb with its .py
notebooks: venv
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		GANKIT_PROFILE=$${GANKIT_PROFILE:-cpu} $(EXECUTE) "$$nb" || exit 1; \
	done
	$(PY) scripts/widget_fallbacks.py $(NOTEBOOKS)
	$(VENV)/bin/nbstripout --keep-output --keep-count $(NOTEBOOKS)

## test: unit tests, then strict nbval over the committed notebooks in the smoke profile
test: venv
	$(PY) -m pytest -q tests notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg

unit: venv
	$(PY) -m pytest -q tests

## reports: the progress report over the runs and HTML exports of the executed lessons in $(LESSONS)
reports: venv
	$(PY) -c "from gankit.report import export_notebooks; import glob; export_notebooks(sorted(glob.glob('$(LESSONS)/[0-9][0-9]_*.ipynb')), '$(REPORTS)')"
	$(VENV)/bin/gankit report --out $(REPORTS)

## dist: a wheel of gankit in build/dist/ (e.g. to upload to Google Drive for Colab; README "Colab");
## built with the venv's setuptools when it is recent enough (offline), else in pip's isolated build
dist: venv
	$(PY) -m pip wheel --no-deps --quiet --wheel-dir $(DIST_DIR) $$($(PY) -c \
		"import setuptools; print('--no-build-isolation' * (int(setuptools.__version__.split('.')[0]) >= 77))" \
		2>/dev/null) .
	@ls -1 $(DIST_DIR)/gankit-*.whl

## student: the student versions of the lessons in build/student/ (solutions replaced by
## `raise NotImplementedError()` with nbgrader's ClearSolutions, outputs cleared)
student: venv
	$(PY) scripts/make_student.py build/student

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
