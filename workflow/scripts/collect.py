"""Rule collect: merge every point file of the study into its cube."""

from opscale.cube import collect_cube
from opscale.jobs import job

with job(snakemake):
    collect_cube(snakemake.input.points, snakemake.config, snakemake.output.cube)
