rule collect:
    input:
        points=get_point_files,
    output:
        cube=LAYOUT.cube,
    log:
        LAYOUT.log("collect"),
    benchmark:
        LAYOUT.benchmark("collect")
    conda:
        "../../envs/opscale.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/collect.py"
