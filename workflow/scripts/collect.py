"""Rule collect: merge every point file of the study into its cube, then drop the
checkpoints of the points it read (kept until now so that a kill between a training job's
end and Snakemake's record of it loses nothing)."""

import logging

from opscale.cube import collect_cube
from opscale.jobs import job
from opscale.layout import StudyLayout

with job(snakemake):
    collect_cube(snakemake.input.points, snakemake.config, snakemake.output.cube)
    layout = StudyLayout(snakemake.config["study"])
    removed = layout.remove_checkpoints(snakemake.input.points)
    logging.getLogger("opscale.collect").info("removed %d finished checkpoint(s)", removed)
