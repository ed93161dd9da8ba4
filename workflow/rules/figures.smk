# Figures read only the cube and the fit: deleting them and running `snakemake figures`
# redraws them without any training job. Every file is declared (opscale.figures): each
# figure in each format of figures.format, the PNG (and the interactive page of the
# scaling figures) in the report, the other formats beside the PNG.
from opscale.figures import figure_files


rule figures:
    input:
        cube=rules.collect.output.cube,
        fit=rules.fit.output.fit,
    output:
        [
            (
                report(
                    LAYOUT.figure(name, fmt),
                    caption=f"../report/{name}.rst",
                    category=category,
                )
                if category
                else LAYOUT.figure(name, fmt)
            )
            for name, fmt, category in figure_files(config)
        ],
    log:
        LAYOUT.log("figures"),
    benchmark:
        LAYOUT.benchmark("figures")
    conda:
        "../../envs/opscale.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        # PNG resolution: changing it redraws the figures only
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/figures.py"
