# Figures (PNG + SVG, matplotlib): batch-size sweeps and frontiers per (task, model), a power
# timeline per run, and energy per response per task. `jouleflow plot KIND ... -o X.png` writes
# X.png and X.svg.


rule plot_sweep:
    input:
        summary=SUMMARY,
    output:
        png=report(
            f"{RESULTS}/figures/sweep/{{task}}/{{model}}.png",
            caption="../report/sweep.rst",
            category="Batch-size sweeps",
            subcategory="{task}",
            labels={"model": "{model}", "figure": "sweep"},
        ),
        svg=f"{RESULTS}/figures/sweep/{{task}}/{{model}}.svg",
    log:
        "logs/plot_sweep/{task}/{model}.log",
    conda:
        ENV_ANALYSIS
    params:
        group=group_info,
    shell:
        "jouleflow plot sweep --summary {input.summary} --task {wildcards.task} "
        "--model {params.group[model]} --precision {params.group[precision]} --allow-empty "
        "-o {output.png} > {log} 2>&1"


rule plot_frontier:
    input:
        summary=SUMMARY,
        targets=ANALYSIS_TARGETS,
        published=PUBLISHED_FILES,
    output:
        png=report(
            f"{RESULTS}/figures/frontier/{{task}}/{{model}}.png",
            caption="../report/frontier.rst",
            category="Frontiers",
            subcategory="{task}",
            labels={"model": "{model}", "figure": "frontier"},
        ),
        svg=f"{RESULTS}/figures/frontier/{{task}}/{{model}}.svg",
    log:
        "logs/plot_frontier/{task}/{model}.log",
    conda:
        ENV_ANALYSIS
    params:
        group=group_info,
        metric=lambda wildcards: GRID.latency_metric(wildcards.task),
        target=latency_targets,
        published=published_option,
    shell:
        "jouleflow plot frontier --summary {input.summary} --task {wildcards.task} "
        "--model {params.group[model]} --precision {params.group[precision]} "
        "--latency-metric {params.metric} {params.target} {params.published} --allow-empty "
        "-o {output.png} > {log} 2>&1"


rule plot_timeline:
    input:
        run=RUN,
        energy=ENERGY,
    output:
        png=report(
            f"{RESULTS}/figures/timeline/{POINT}.png",
            caption="../report/timeline.rst",
            category="Power timelines",
            subcategory="{task}",
            labels={"model": "{model}", "gpu": "{gpu}", "parallelism": "{parallelism}", "batch": "{batch}"},
        ),
        svg=f"{RESULTS}/figures/timeline/{POINT}.svg",
    log:
        f"logs/plot_timeline/{POINT}.log",
    conda:
        ENV_ANALYSIS
    shell:
        "jouleflow plot timeline {input.run} --energy {input.energy} --allow-empty -o {output.png} > {log} 2>&1"


rule plot_task_energy:
    input:
        summary=SUMMARY,
    output:
        png=report(
            f"{RESULTS}/figures/task-energy.png",
            caption="../report/task_energy.rst",
            category="Energy per response",
            labels={"figure": "energy per response by task"},
        ),
        svg=f"{RESULTS}/figures/task-energy.svg",
    log:
        "logs/plot_task_energy.log",
    conda:
        ENV_ANALYSIS
    shell:
        "jouleflow plot task-energy --summary {input.summary} --allow-empty -o {output.png} > {log} 2>&1"
