rule fit:
    input:
        cube=rules.collect.output.cube,
    output:
        fit=LAYOUT.fit,
        table=report(
            LAYOUT.fit_table,
            caption="../report/fit.rst",
            category="Fits",
        ),
        exponents=LAYOUT.exponents,
    log:
        LAYOUT.log("fit"),
    benchmark:
        LAYOUT.benchmark("fit")
    conda:
        "../../envs/opscale.yaml"
    # groups (e.g. one per intrinsic dimension) are fitted in parallel processes
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        # the fit: settings (bootstrap, scheme, ...): changing them refits only
        settings=config.get("fit", {}),
    script:
        "../scripts/fit.py"
