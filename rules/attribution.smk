# Where the joules go, per LLM run: static vs dynamic, J per prefill and per decode token, each request's
# energy and a diagnosis (docs/attribution.md), beside the run's summary.json; and their figures. A run that
# cannot be attributed (failed, infeasible, no steady window) gets an attribution.json saying why.
# Diffusion points have none: rules/common.smk lists LLM points only.


rule attribute:
    input:
        run=RUN,
        energy=ENERGY,
    output:
        attribution=ATTRIBUTION,
        requests=REQUEST_ENERGY,
    log:
        f"logs/attribute/{POINT}.log",
    conda:
        ENV_ANALYSIS
    shell:
        "jouleflow attribute {input.run} --summary {input.energy} -o {output.attribution} "
        "--requests {output.requests} --allow-empty > {log} 2>&1"


rule plot_energy_split:
    input:
        summary=SUMMARY,
    output:
        png=report(
            f"{RESULTS}/figures/energy-split/{{task}}/{{model}}.png",
            caption="../report/energy_split.rst",
            category="Where the joules go",
            subcategory="{task}",
            labels={"model": "{model}", "figure": "energy split"},
        ),
        svg=f"{RESULTS}/figures/energy-split/{{task}}/{{model}}.svg",
    log:
        "logs/plot_energy_split/{task}/{model}.log",
    conda:
        ENV_ANALYSIS
    params:
        group=group_info,
    shell:
        "jouleflow plot energy-split --summary {input.summary} --task {wildcards.task} "
        "--model {params.group[model]} --precision {params.group[precision]} --allow-empty "
        "-o {output.png} > {log} 2>&1"


rule plot_request_energy:
    input:
        run=RUN,
        requests=REQUEST_ENERGY,
    output:
        png=report(
            f"{RESULTS}/figures/request-energy/{POINT}.png",
            caption="../report/request_energy.rst",
            category="Where the joules go",
            subcategory="{task}",
            labels={"model": "{model}", "gpu": "{gpu}", "parallelism": "{parallelism}", "batch": "{batch}"},
        ),
        svg=f"{RESULTS}/figures/request-energy/{POINT}.svg",
    log:
        f"logs/plot_request_energy/{POINT}.log",
    conda:
        ENV_ANALYSIS
    shell:
        "jouleflow plot request-energy {input.run} --requests {input.requests} --allow-empty "
        "-o {output.png} > {log} 2>&1"
