# Per-task aggregates over models (jouleflow compare task-aggregates | modality | memory-batch | spread),
# included by rules/compare.smk; their parameter functions are in rules/compare_functions.smk.


rule compare_task_aggregates:
    input:
        summary=compare_summary(),
    output:
        csv=report(
            f"{COMPARE_DIR}/task-aggregates-{{compare_name}}.csv",
            caption="../report/compare/task-aggregates.rst",
            category="Comparisons",
            subcategory="Per-task aggregates",
        ),
        md=f"{COMPARE_DIR}/task-aggregates-{{compare_name}}.md",
        png=report(
            f"{COMPARE_DIR}/task-aggregates-{{compare_name}}.png",
            caption="../report/compare/task-aggregates.rst",
            category="Comparisons",
            subcategory="Per-task aggregates",
        ),
        svg=f"{COMPARE_DIR}/task-aggregates-{{compare_name}}.svg",
    log:
        "logs/compare/task-aggregates-{compare_name}.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=compare_task_aggregates_opts,
    shell:
        "jouleflow compare task-aggregates --summary {input.summary} {params.opts} "
        "-o {output.csv} --markdown {output.md} --figure {output.png} > {log} 2>&1"


rule compare_modality:
    input:
        summary=compare_summary(),
    output:
        csv=report(
            f"{COMPARE_DIR}/modality-{{compare_name}}.csv",
            caption="../report/compare/modality.rst",
            category="Comparisons",
            subcategory="Multimodal vs text",
        ),
        md=f"{COMPARE_DIR}/modality-{{compare_name}}.md",
        png=report(
            f"{COMPARE_DIR}/modality-{{compare_name}}.png",
            caption="../report/compare/modality.rst",
            category="Comparisons",
            subcategory="Multimodal vs text",
        ),
        svg=f"{COMPARE_DIR}/modality-{{compare_name}}.svg",
    log:
        "logs/compare/modality-{compare_name}.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=compare_modality_opts,
    shell:
        "jouleflow compare modality --summary {input.summary} {params.opts} "
        "-o {output.csv} --markdown {output.md} --figure {output.png} > {log} 2>&1"


rule compare_memory_batch:
    input:
        summary=compare_summary(),
    output:
        csv=report(
            f"{COMPARE_DIR}/memory-batch.csv",
            caption="../report/compare/memory-batch.rst",
            category="Comparisons",
            subcategory="Memory and batch",
        ),
        md=f"{COMPARE_DIR}/memory-batch.md",
        png=report(
            f"{COMPARE_DIR}/memory-batch.png",
            caption="../report/compare/memory-batch.rst",
            category="Comparisons",
            subcategory="Memory and batch",
        ),
        svg=f"{COMPARE_DIR}/memory-batch.svg",
    log:
        "logs/compare/memory-batch.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=compare_memory_batch_opts,
    shell:
        "jouleflow compare memory-batch --summary {input.summary} {params.opts} "
        "-o {output.csv} --markdown {output.md} --figure {output.png} > {log} 2>&1"


rule compare_spread:
    input:
        summary=compare_summary(),
    output:
        csv=report(
            f"{COMPARE_DIR}/spread.csv",
            caption="../report/compare/spread.rst",
            category="Comparisons",
            subcategory="Spread across models",
        ),
        md=f"{COMPARE_DIR}/spread.md",
        png=report(
            f"{COMPARE_DIR}/spread.png",
            caption="../report/compare/spread.rst",
            category="Comparisons",
            subcategory="Spread across models",
        ),
        svg=f"{COMPARE_DIR}/spread.svg",
    log:
        "logs/compare/spread.log",
    conda:
        ENV_ANALYSIS
    params:
        opts=compare_spread_opts,
    shell:
        "jouleflow compare spread --summary {input.summary} {params.opts} "
        "-o {output.csv} --markdown {output.md} --figure {output.png} > {log} 2>&1"
