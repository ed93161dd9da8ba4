rule collect:
    input:
        points=get_point_files,
    output:
        cube=f"{STUDY}/cube.nc",
    log:
        f"{STUDY}/logs/collect.log",
    benchmark:
        f"{STUDY}/benchmarks/collect.tsv"
    conda:
        "../../envs/opscale.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/collect.py"
