# Figures read only the cube and the fit: deleting them and running `snakemake figures`
# redraws them without any training job.
rule figures:
    input:
        cube=rules.collect.output.cube,
        fit=rules.fit.output.fit,
    output:
        **{
            name: report(
                LAYOUT.figure(name),
                caption=f"../report/{name}.rst",
                category=category,
            )
            for name, category in FIGURES.items()
        },
    log:
        LAYOUT.log("figures"),
    benchmark:
        LAYOUT.benchmark("figures")
    conda:
        "../../envs/opscale.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/figures.py"
