# One job trains one grid point: all its seeds (and member axes) as one batched model.
# A killed job resumes from its checkpoint (runtime.checkpoint_every).
rule train:
    input:
        data=get_data_file,
    output:
        point=LAYOUT.point_file(POINT),
    log:
        LAYOUT.train_log(POINT),
    benchmark:
        LAYOUT.benchmark("train", POINT)
    conda:
        "../../envs/opscale.yaml"
    threads: 1
    resources:
        mem_mb=get_train_mem_mb,
        runtime=get_train_runtime,
    params:
        spec=get_point_spec,
        coords=get_point_coords,
        checkpoint=LAYOUT.checkpoint(POINT),
    script:
        "../scripts/train.py"
