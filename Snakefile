# opscale: neural scaling laws of operator learning, measured and fitted.
#
#   snakemake --cores 2                                   # the default study
#   snakemake --cores 2 --configfile config/studies/X.yaml   # another study
#   snakemake figures                                     # redraw figures, never retrain
#
# Data flow (all NetCDF): data -> train (one job per grid point) -> collect -> fit -> figures.
# All logic lives in the opscale package (src/opscale), installed by `make` or by
# envs/opscale.yaml under --sdm conda.
import os

from snakemake.utils import min_version

min_version("9.0")

# envs/opscale.yaml (--sdm conda) installs this checkout from ${OPSCALE_CHECKOUT}: conda runs
# pip on a copy of that file in .snakemake/conda/, where no relative path finds the checkout.
os.environ.update(OPSCALE_CHECKOUT=workflow.basedir)


# A study file named with --configfile is the whole study: it replaces this default
# instead of being merged into it (a merge would leak the default's sweep axes into it).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/figures.smk"


# The landing text of the report: written from the fitted study (rule page) once it is
# there, the generic text before (absolute: a relative path is read from the Snakefile's
# folder, not the working directory).
LANDING = os.path.abspath(LAYOUT.landing)
if not os.path.exists(LANDING):
    LANDING = "workflow/report/workflow.rst"


report: LANDING


# Cheap aggregation steps run where Snakemake runs, never as cluster jobs.
localrules:
    all,
    collect,
    fit,
    page,
    figures,


rule all:
    default_target: True
    input:
        rules.fit.output,
        rules.page.output,
        rules.figures.output,
