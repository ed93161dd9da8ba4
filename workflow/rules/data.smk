rule data:
    input:
        files=get_problem_files,
    output:
        data=LAYOUT.data_file(DATA_ID),
    log:
        LAYOUT.log("data", DATA_ID),
    benchmark:
        LAYOUT.benchmark("data", DATA_ID)
    conda:
        "../../envs/opscale.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        spec=lambda wildcards: DATA[wildcards.data_id],
    script:
        "../scripts/make_data.py"
