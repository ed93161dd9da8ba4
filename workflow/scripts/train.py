"""Rule train: train one job's group of models as one batched model."""

from opscale.jobs import job
from opscale.layout import StudyLayout
from opscale.train import train_point

with job(snakemake):
    train_point(
        spec=snakemake.params.spec,
        coords=snakemake.params.coords,
        data_path=snakemake.input.data,
        out_path=snakemake.output.point,
        runtime=snakemake.config["runtime"],
        checkpoint_path=snakemake.params.checkpoint,
        # not a param: a new param would make Snakemake rerun every trained point
        heartbeat_path=StudyLayout(snakemake.config["study"]).heartbeat(snakemake.wildcards.point),
    )
