"""Rule page: fit.md as the report's HTML page, and the report's landing text."""

from opscale.jobs import job
from opscale.page import write_pages

with job(snakemake):
    write_pages(snakemake.input.fit, snakemake.output.page, snakemake.output.landing)
