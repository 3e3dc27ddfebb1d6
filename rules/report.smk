# The HTML report: `snakemake --report results/report.html` after a run (or `--report report.zip`).
# It collects every output flagged report() above (tables, figures, grid), with the captions in
# report/, grouped by category, plus the workflow description report/workflow.rst.
# This rule writes the provenance table the report opens with: which run came from where.


rule provenance_table:
    input:
        jobs=f"{RESULTS}/grid/jobs.tsv",
        runs=expand_points(RUN),
    output:
        report(
            f"{RESULTS}/tables/provenance.csv",
            caption="../report/provenance.rst",
            category="Campaign",
            labels={"table": "provenance"},
        ),
    log:
        "logs/provenance_table.log",
    conda:
        ENV_ANALYSIS
    shell:
        "jouleflow campaign provenance --jobs {input.jobs} -o {output} > {log} 2>&1"


# The interactive campaign page: one self-contained HTML file (works offline), also shown in the report.
rule campaign_page:
    input:
        summary=SUMMARY,
        recommendations=f"{RESULTS}/tables/recommendations.csv",
        targets=ANALYSIS_TARGETS,
        provenance=f"{RESULTS}/tables/provenance.csv",
        timelines=page_timelines(),
        published=PUBLISHED_FILES,
    output:
        report(
            f"{RESULTS}/report/campaign.html",
            caption="../report/campaign_page.rst",
            category="Campaign",
            labels={"page": "interactive campaign page"},
        ),
    log:
        "logs/campaign_page.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=page_options,
    shell:
        "jouleflow report page --summary {input.summary} --recommendations {input.recommendations} "
        "--provenance {input.provenance} {params.opts} -o {output} > {log} 2>&1"
