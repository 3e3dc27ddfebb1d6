# One run directory per grid point: measured on a GPU (rule measure) or copied from the bundled
# reference campaign (rule fetch_reference); everything downstream is identical.
#
# Guards (docs/pipeline.md): run directories are update() outputs, so Snakemake never deletes a
# finished measurement before a rerun; the CLI then keeps a run that matches its job spec, refuses
# one that does not (naming the differing keys), and never measures over a finished run.


ruleorder: fetch_reference > measure


rule job_spec:
    output:
        SPEC,
    params:
        spec=lambda wildcards: GRID.spec(point_of(wildcards)),
    log:
        f"logs/job_spec/{POINT}.log",
    localrule: True
    run:
        write_json_logged(params.spec, output[0], log[0])


rule fetch_reference:
    input:
        spec=SPEC,
        # ancient: a checkout's fresh mtimes must not look like a changed bundle (content is checked).
        bundled=ancient(bundled_run),
    output:
        update(directory(RUN)),
    log:
        f"logs/fetch_reference/{POINT}.log",
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        "jouleflow campaign fetch-reference {input.bundled} {output} --spec {input.spec} > {log} 2>&1"


rule measure:
    input:
        spec=SPEC,
        after=ancient(smaller_batch_run),
    output:
        update(directory(RUN)),
    params:
        after=lambda wildcards, input: f"--after {input.after}" if input.after else "",
    log:
        f"logs/measure/{POINT}.log",
    conda:
        measure_env
    resources:
        gpu=measure_resource("gpu"),
        gpu_model=measure_resource("gpu_model"),
        runtime=measure_resource("runtime"),
        mem_mb=measure_resource("mem_mb"),
        cpus_per_task=measure_resource("cpus_per_task"),
    shell:
        "jouleflow campaign measure {input.spec} {output} {params.after} > {log} 2>&1"
