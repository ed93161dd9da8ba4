"""Rule data: draw and solve every split of every seed of one problem."""

from opscale.jobs import job
from opscale.problems import make_data_file

with job(snakemake):
    make_data_file(snakemake.params.spec, snakemake.output.data)
