# The grid as tables, and the campaign summary: one row per run, the union of all runs.


rule grid_table:
    input:
        # ancient: rewritten whenever the config changes; the digest param says when the grid did.
        ancient(PLANNED_CONFIG),
    output:
        jobs=report(
            f"{RESULTS}/grid/jobs.tsv",
            caption="../report/grid.rst",
            category="Campaign",
            labels={"table": "planned runs"},
        ),
        skipped=report(
            f"{RESULTS}/grid/skipped.tsv",
            caption="../report/skipped.rst",
            category="Campaign",
            labels={"table": "skipped points"},
        ),
    log:
        "logs/grid_table.log",
    localrule: True
    conda:
        ENV_ANALYSIS
    params:
        digest=grid_digest(),
    shell:
        "jouleflow campaign grid-table {input} --jobs {output.jobs} --skipped {output.skipped} > {log} 2>&1"


rule summary:
    input:
        jobs=f"{RESULTS}/grid/jobs.tsv",
        energy=expand_points(ENERGY),
        # read beside each summary.json for the attribution columns (LLM points only)
        attribution=expand_points(ATTRIBUTION, modality="llm"),
    output:
        parquet=SUMMARY,
        csv=report(
            f"{RESULTS}/summary/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "summary"},
        ),
    log:
        "logs/summary.log",
    conda:
        ENV_ANALYSIS
    params:
        cost=COST_OPTION,
    shell:
        "jouleflow summarize --jobs {input.jobs} -o {output.parquet} --csv {output.csv} {params.cost} "
        "> {log} 2>&1"
