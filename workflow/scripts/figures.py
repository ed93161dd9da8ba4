"""Rule figures: draw the study's figures, in every declared format, from its cube and fit."""

from opscale.jobs import job
from opscale.plots import draw_figures, outputs_by_figure

with job(snakemake):
    outputs = outputs_by_figure(snakemake.output)
    draw_figures(snakemake.input.cube, snakemake.input.fit, outputs, dpi=snakemake.params.dpi)
