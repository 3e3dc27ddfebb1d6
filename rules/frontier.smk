# Time–energy frontiers per (task, model, precision) and minimum-energy recommendations under the
# latency targets of config `analysis`. Changing a target reruns these and the figures, nothing else.


rule analysis_targets:
    output:
        ANALYSIS_TARGETS,
    params:
        targets=analysis_targets(),
    log:
        "logs/analysis_targets.log",
    localrule: True
    run:
        write_json_logged(params.targets, output[0], log[0])


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
    params:
        targets=lambda wildcards, input: f"--targets {input.targets}" if analysis_targets() else "",
    log:
        "logs/frontier.log",
    conda:
        ENV_ANALYSIS
    shell:
        "jouleflow frontier --summary {input.summary} -o {output.frontier} --allow-empty "
        "--recommendations {output.recommendations} {params.targets} > {log} 2>&1"
