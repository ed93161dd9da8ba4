# One job trains one grid point: all its seeds (and member axes) as one batched model.
# A killed job resumes from its checkpoint (runtime.checkpoint_every).
rule train:
    input:
        data=get_data_file,
    output:
        point=f"{STUDY}/points/{{point}}.nc",
    log:
        f"{STUDY}/logs/train/{{point}}.log",
    benchmark:
        f"{STUDY}/benchmarks/train/{{point}}.tsv"
    conda:
        "../../envs/opscale.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        spec=get_point_spec,
        coords=get_point_coords,
        checkpoint=f"{STUDY}/checkpoints/{{point}}.pt",
    script:
        "../scripts/train.py"
