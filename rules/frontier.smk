# Time–energy frontiers per (task, model, precision) and minimum-energy recommendations under the
# latency targets of config `analysis`. Changing a target reruns these and the figures, nothing else.


rule analysis_targets:
    input:
        # ancient: rewritten whenever the config changes; the targets param says when they did.
        ancient(PLANNED_CONFIG),
    output:
        ANALYSIS_TARGETS,
    log:
        "logs/analysis_targets.log",
    localrule: True
    conda:
        ENV_ANALYSIS
    params:
        targets=GRID.analysis_targets(),
    shell:
        "jouleflow campaign analysis-targets {input} -o {output} > {log} 2>&1"


rule frontier:
    input:
        summary=SUMMARY,
        targets=ANALYSIS_TARGETS,
    output:
        frontier=f"{RESULTS}/tables/frontier.parquet",
        recommendations=report(
            f"{RESULTS}/tables/recommendations.csv",
            caption="../report/recommendations.rst",
            category="Tables",
            labels={"table": "recommendations"},
        ),
    log:
        "logs/frontier.log",
    conda:
        ENV_ANALYSIS
    params:
        targets=lambda wildcards, input: f"--targets {input.targets}" if GRID.analysis_targets() else "",
    shell:
        "jouleflow frontier --summary {input.summary} -o {output.frontier} --allow-empty "
        "--recommendations {output.recommendations} {params.targets} > {log} 2>&1"
