"""Rule figures: draw the study's figures from its cube and fit."""

from opscale.jobs import job
from opscale.plots import draw_figures

with job(snakemake):
    draw_figures(snakemake.input.cube, snakemake.input.fit, dict(snakemake.output.items()))
