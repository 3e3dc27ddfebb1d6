# Cross-configuration comparisons (jouleflow compare ...) over a summary Parquet: this campaign's
# summary, a given one (compare.summary), or ML.ENERGY's published results imported on the fly
# (compare.published.path). Each analysis writes results/compare/<name>.{csv,md,png,svg}.
# Nothing here measures: changing an analysis setting reruns only these rules.

# RESULTS, SUMMARY and ENV_ANALYSIS come from rules/constants.smk: a workflow of the comparisons
# alone includes it before this file.

COMPARE = config.get("compare") or {}
COMPARE_DIR = f"{RESULTS}/compare"


include: "compare_functions.smk"
include: "costplan_functions.smk"


wildcard_constraints:
    compare_name="[A-Za-z0-9._-]+",
    compare_metric="[a-z0-9_]+",


rule compare_all:
    input:
        compare_targets(),


rule compare_import_published:
    input:
        compare_published_files,
    output:
        f"{COMPARE_DIR}/published/summary.parquet",
    log:
        "logs/compare/import-published.log",
    conda:
        ENV_ANALYSIS
    params:
        source=(COMPARE.get("published") or {}).get("path"),
    shell:
        "jouleflow import mlenergy {params.source} -o {output} > {log} 2>&1"


rule compare_gpus:
    input:
        summary=compare_summary(),
    output:
        csv=report(
            f"{COMPARE_DIR}/gpus-{{compare_name}}.csv",
            caption="../report/compare/gpus.rst",
            category="Comparisons",
            subcategory="GPU generations",
        ),
        md=f"{COMPARE_DIR}/gpus-{{compare_name}}.md",
        png=report(
            f"{COMPARE_DIR}/gpus-{{compare_name}}.png",
            caption="../report/compare/gpus.rst",
            category="Comparisons",
            subcategory="GPU generations",
        ),
        svg=f"{COMPARE_DIR}/gpus-{{compare_name}}.svg",
    log:
        "logs/compare/gpus-{compare_name}.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=compare_gpus_opts,
    shell:
        "jouleflow compare gpus --summary {input.summary} {params.opts} "
        "-o {output.csv} --markdown {output.md} --figure {output.png} > {log} 2>&1"


rule compare_precision:
    input:
        summary=compare_summary(),
    output:
        csv=report(
            f"{COMPARE_DIR}/precision-{{compare_metric}}.csv",
            caption="../report/compare/precision.rst",
            category="Comparisons",
            subcategory="FP8 vs BF16",
        ),
        md=f"{COMPARE_DIR}/precision-{{compare_metric}}.md",
        png=report(
            f"{COMPARE_DIR}/precision-{{compare_metric}}.png",
            caption="../report/compare/precision.rst",
            category="Comparisons",
            subcategory="FP8 vs BF16",
        ),
        svg=f"{COMPARE_DIR}/precision-{{compare_metric}}.svg",
    log:
        "logs/compare/precision-{compare_metric}.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=compare_precision_opts,
    shell:
        "jouleflow compare precision --summary {input.summary} {params.opts} "
        "-o {output.csv} --markdown {output.md} --figure {output.png} > {log} 2>&1"


rule compare_scaling:
    input:
        summary=compare_summary(),
    output:
        csv=report(
            f"{COMPARE_DIR}/scaling-{{compare_name}}.csv",
            caption="../report/compare/scaling.rst",
            category="Comparisons",
            subcategory="Multi-GPU scaling",
        ),
        md=f"{COMPARE_DIR}/scaling-{{compare_name}}.md",
        png=report(
            f"{COMPARE_DIR}/scaling-{{compare_name}}.png",
            caption="../report/compare/scaling.rst",
            category="Comparisons",
            subcategory="Multi-GPU scaling",
        ),
        svg=f"{COMPARE_DIR}/scaling-{{compare_name}}.svg",
    log:
        "logs/compare/scaling-{compare_name}.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=compare_scaling_opts,
    shell:
        "jouleflow compare scaling --summary {input.summary} {params.opts} "
        "-o {output.csv} --markdown {output.md} --figure {output.png} > {log} 2>&1"


rule compare_tasks:
    input:
        summary=compare_summary(),
    output:
        csv=report(
            f"{COMPARE_DIR}/tasks-{{compare_name}}.csv",
            caption="../report/compare/tasks.rst",
            category="Comparisons",
            subcategory="Tasks",
        ),
        md=f"{COMPARE_DIR}/tasks-{{compare_name}}.md",
        png=report(
            f"{COMPARE_DIR}/tasks-{{compare_name}}.png",
            caption="../report/compare/tasks.rst",
            category="Comparisons",
            subcategory="Tasks",
        ),
        svg=f"{COMPARE_DIR}/tasks-{{compare_name}}.svg",
    log:
        "logs/compare/tasks-{compare_name}.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=compare_tasks_opts,
    shell:
        "jouleflow compare tasks --summary {input.summary} {params.opts} "
        "-o {output.csv} --markdown {output.md} --figure {output.png} > {log} 2>&1"


rule compare_moe:
    input:
        summary=compare_summary(),
    output:
        csv=report(
            f"{COMPARE_DIR}/moe.csv",
            caption="../report/compare/moe.rst",
            category="Comparisons",
            subcategory="MoE vs dense",
        ),
        md=f"{COMPARE_DIR}/moe.md",
        png=report(
            f"{COMPARE_DIR}/moe.png",
            caption="../report/compare/moe.rst",
            category="Comparisons",
            subcategory="MoE vs dense",
        ),
        svg=f"{COMPARE_DIR}/moe.svg",
    log:
        "logs/compare/moe.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=compare_moe_opts,
    shell:
        "jouleflow compare moe --summary {input.summary} {params.opts} "
        "-o {output.csv} --markdown {output.md} --figure {output.png} > {log} 2>&1"


rule compare_tdp:
    input:
        summary=compare_summary(),
    output:
        csv=report(
            f"{COMPARE_DIR}/tdp.csv",
            caption="../report/compare/tdp.rst",
            category="Comparisons",
            subcategory="TDP estimate",
        ),
        md=f"{COMPARE_DIR}/tdp.md",
        png=report(
            f"{COMPARE_DIR}/tdp.png",
            caption="../report/compare/tdp.rst",
            category="Comparisons",
            subcategory="TDP estimate",
        ),
        svg=f"{COMPARE_DIR}/tdp.svg",
    log:
        "logs/compare/tdp.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=compare_tdp_opts,
    shell:
        "jouleflow compare tdp --summary {input.summary} {params.opts} "
        "-o {output.csv} --markdown {output.md} --figure {output.png} > {log} 2>&1"


# compare.longitudinal: two campaigns of the same models and GPUs. A side given as
# {published: DIR} is ML.ENERGY published data (v2 or v3), imported once per directory here.
rule compare_import_longitudinal:
    input:
        compare_imported_files,
    output:
        f"{COMPARE_DIR}/imported/{{compare_source}}/summary.parquet",
    log:
        "logs/compare/import-{compare_source}.log",
    wildcard_constraints:
        compare_source="[A-Za-z0-9._-]+",
    conda:
        ENV_ANALYSIS
    params:
        source=compare_imported_dir,
    shell:
        "jouleflow import mlenergy {params.source} -o {output} > {log} 2>&1"


rule compare_longitudinal:
    input:
        baseline=compare_longitudinal_summary("baseline"),
        challenger=compare_longitudinal_summary("challenger"),
        aliases=compare_longitudinal_aliases,
    output:
        csv=report(
            f"{COMPARE_DIR}/longitudinal-{{compare_name}}.csv",
            caption="../report/compare/longitudinal.rst",
            category="Comparisons",
            subcategory="Longitudinal",
        ),
        md=f"{COMPARE_DIR}/longitudinal-{{compare_name}}.md",
        png=report(
            f"{COMPARE_DIR}/longitudinal-{{compare_name}}.png",
            caption="../report/compare/longitudinal.rst",
            category="Comparisons",
            subcategory="Longitudinal",
        ),
        svg=f"{COMPARE_DIR}/longitudinal-{{compare_name}}.svg",
    log:
        "logs/compare/longitudinal-{compare_name}.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=compare_longitudinal_opts,
    shell:
        "jouleflow compare longitudinal --baseline {input.baseline} --challenger {input.challenger} "
        "{params.opts} -o {output.csv} --markdown {output.md} --figure {output.png} > {log} 2>&1"


# Best configuration per model under each deadline (compare.recommend; jouleflow recommend --all).
rule compare_recommend_all:
    input:
        summary=compare_summary(),
    output:
        csv=report(
            f"{COMPARE_DIR}/recommend-{{compare_name}}.csv",
            caption="../report/compare/recommend.rst",
            category="Comparisons",
            subcategory="Best configuration per model",
        ),
        md=f"{COMPARE_DIR}/recommend-{{compare_name}}.md",
        json=f"{COMPARE_DIR}/recommend-{{compare_name}}.json",
        png=report(
            f"{COMPARE_DIR}/recommend-{{compare_name}}.png",
            caption="../report/compare/recommend-figure.rst",
            category="Comparisons",
            subcategory="Best configuration per model",
        ),
        svg=f"{COMPARE_DIR}/recommend-{{compare_name}}.svg",
    log:
        "logs/compare/recommend-{compare_name}.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=recommend_all_opts,
    shell:
        "(jouleflow recommend --all --summary {input.summary} {params.opts} "
        "-o {output.csv} --markdown {output.md} --figure {output.png} --json > {output.json}) 2> {log}"


# What a power budget serves per model under a deadline (compare.budget; jouleflow plan budget).
rule compare_budget:
    input:
        summary=compare_summary(),
    output:
        csv=report(
            f"{COMPARE_DIR}/budget-{{compare_name}}.csv",
            caption="../report/compare/budget.rst",
            category="Comparisons",
            subcategory="Power budget",
        ),
        md=f"{COMPARE_DIR}/budget-{{compare_name}}.md",
        json=f"{COMPARE_DIR}/budget-{{compare_name}}.json",
        png=report(
            f"{COMPARE_DIR}/budget-{{compare_name}}.png",
            caption="../report/compare/budget.rst",
            category="Comparisons",
            subcategory="Power budget",
        ),
        svg=f"{COMPARE_DIR}/budget-{{compare_name}}.svg",
    log:
        "logs/compare/budget-{compare_name}.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=budget_opts,
    shell:
        "(jouleflow plan budget --summary {input.summary} {params.opts} -o {output.csv} "
        "--markdown {output.md} --figure {output.png} --json > {output.json}) 2> {log}"


# Per-task aggregates over models (task-aggregates, modality, memory-batch, spread); after the
# wildcard constraints above, which apply to the rules that follow them.
include: "compare_aggregates.smk"
