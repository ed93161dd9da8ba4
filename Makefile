# opscale: `make run` runs the default study and writes its report; `make test` checks.
#   make run STUDY=<name>   runs config/studies/<name>.yaml instead (report in results/<name>/)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STUDY ?= default
CORES ?= 2

ifeq ($(STUDY),default)
  CONFIG_ARGS :=
  REPORT := results/report.html
else
  CONFIG_ARGS := --configfile config/studies/$(STUDY).yaml
  REPORT := results/$(STUDY)/report.html
endif
SNAKEMAKE := $(BIN)/snakemake --workflow-profile workflow/profiles/default --cores $(CORES) $(CONFIG_ARGS)

.PHONY: install run report test lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --editable '.[dev]'
	touch $@

run: install
	$(SNAKEMAKE)
	$(MAKE) --no-print-directory report

report: install
	$(SNAKEMAKE) --report $(REPORT)
	@echo "report: $(REPORT)"

test: lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
