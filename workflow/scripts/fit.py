"""Rule fit: scaling-law regressions of the study cube."""

from opscale.fit import fit_cube
from opscale.jobs import job

with job(snakemake):
    fit_cube(
        snakemake.input.cube,
        snakemake.output.fit,
        snakemake.output.table,
        dict(snakemake.params.settings),
        workers=snakemake.threads,
        exponents_path=snakemake.output.exponents,
    )
