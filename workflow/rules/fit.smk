rule fit:
    input:
        cube=rules.collect.output.cube,
    output:
        fit=LAYOUT.fit,
        # in the report as its HTML page (rule page)
        table=LAYOUT.fit_table,
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


# The study's page in the report (fit.md as HTML: the report shows HTML, and only offers
# Markdown for download) and the landing text written from the fitted study.
rule page:
    input:
        fit=rules.fit.output.fit,
    output:
        page=report(
            LAYOUT.fit_page,
            caption="../report/fit.rst",
            category="Fits",
        ),
        landing=LAYOUT.landing,
    log:
        LAYOUT.log("page"),
    benchmark:
        LAYOUT.benchmark("page")
    conda:
        "../../envs/opscale.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/page.py"
