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
# Snakemake loads profiles/default/ by itself (the workflow profile beside the Snakefile).
SNAKEMAKE := $(BIN)/snakemake --cores $(CORES) $(CONFIG_ARGS)

.PHONY: install run report docs screenshots studies test lint lock clean

install: $(VENV)/.installed

# The lock file pins every package (direct and transitive) to the version tested; [dev]
# includes [slurm] (tests/test_slurm.py). pyproject.toml itself only states ranges.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--constraint constraints.txt --editable '.[dev]'
	touch $@

run: install
	$(SNAKEMAKE)
	$(MAKE) --no-print-directory report

report: install
	$(SNAKEMAKE) --report $(REPORT)
	@echo "report: $(REPORT)"

# The measured numbers of the docs (docs/studies/*.md, README's excerpt) from results/:
# `make studies` runs every shipped study (an hour or more on 2 cores), `make docs`
# rewrites the pages of those with results (docs/generate.py).
docs: install
	$(BIN)/python docs/generate.py

# docs/images/: the report's landing page and interactive figure in headless chromium
screenshots: install
	$(BIN)/python docs/screenshots.py

studies: install
	$(BIN)/snakemake --cores $(CORES)
	for f in config/studies/*.yaml; do $(BIN)/snakemake --cores $(CORES) --configfile $$f || exit 1; done

test: lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

# Rewrite the lock from the installed packages (after an upgrade in .venv), keeping its
# header; local version labels (torch's +cpu) are dropped so any build of a version fits.
lock: install
	{ grep '^#' constraints.txt; $(BIN)/pip freeze --all --exclude-editable | grep -v '^pip==' | sed 's/+[A-Za-z0-9.]*$$//'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf results .snakemake
