rule data:
    input:
        files=get_problem_files,
    output:
        data=f"{STUDY}/data/{{data_id}}.nc",
    log:
        f"{STUDY}/logs/data/{{data_id}}.log",
    benchmark:
        f"{STUDY}/benchmarks/data/{{data_id}}.tsv"
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
