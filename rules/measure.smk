# One run directory per grid point: measured on a GPU (rule measure) or copied from the bundled
# reference campaign (rule fetch_reference); everything downstream is identical.
#
# Guards (docs/pipeline.md): run directories are update() outputs, so Snakemake never deletes a
# finished measurement before a rerun; the CLI then keeps a run that matches its job spec, refuses
# one that does not (naming the differing keys), and never measures over a finished run.
# Job specs (results/specs/, written from the config at parse time, rules/common.smk) are
# ancient() inputs: rewriting one reruns nothing. The `identity` params, the spec values that
# define what was measured, are what makes a changed config reach the guard.


ruleorder: fetch_reference > measure


rule fetch_reference:
    input:
        spec=ancient(SPEC),
        # ancient: a checkout's fresh mtimes must not look like a changed bundle (content is checked).
        bundled=ancient(bundled_run),
    output:
        update(directory(RUN)),
    log:
        f"logs/fetch_reference/{POINT}.log",
    wildcard_constraints:
        model=models_with_source("reference"),
    localrule: True
    conda:
        ENV_ANALYSIS
    params:
        identity=run_identity,
    shell:
        "jouleflow campaign fetch-reference {input.bundled} {output} --spec {input.spec} > {log} 2>&1"


rule measure:
    input:
        spec=ancient(SPEC),
        after=ancient(smaller_batch_run),
        # a point of a shared-server group: this rule cannot make it (rule measure_shared_<group> does)
        dedicated=not_shared,
    output:
        update(directory(RUN)),
    log:
        f"logs/measure/{POINT}.log",
    wildcard_constraints:
        model=models_with_source("measure"),
    conda:
        measure_env()
    resources:
        # The GPU request in the cluster's style: gpu + gpu_model, or gres (never both; docs/slurm.md).
        gpu=measure_resource("gpu"),
        gpu_model=measure_resource("gpu_model"),
        gres=measure_resource("gres"),
        runtime=measure_resource("runtime"),
        mem_mb=measure_resource("mem_mb"),
        cpus_per_task=measure_resource("cpus_per_task"),
    params:
        identity=run_identity,
        after=lambda wildcards, input: f"--after {input.after}" if input.after else "",
        kind=lambda wildcards: point_of(wildcards).modality,
        failures=f"{RESULTS}/failures/{POINT}.jsonl",
        attempts=f"logs/measure/{POINT}.attempts.log",
        retry=failed_attempt,
    # Snakemake empties {log} when it reruns a job: every attempt is also appended to
    # logs/measure/<run>.attempts.log, which it does not own. The measurement stops itself before the
    # job's time limit (--time-limit-min) and every ending is recorded under results/
    # (docs/pipeline.md, "Failures").
    shell:
        '(echo "=== attempt at $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) ===";'
        " jouleflow campaign measure {input.spec} {output} --kind {params.kind} {params.after}"
        " --time-limit-min {resources.runtime} --failure-log {params.failures}) 2>&1"
        " | tee -a {params.attempts} > {log}"


# measurement.shared_server (plan/shared.py): one job per group starts one vLLM server and measures
# every batch size of the group on it; each point is still its own run directory, guarded as above.
# A rule per group: its outputs are the group's run directories, so a missing one (a batch size
# added, a run moved away) makes the group's job due, and the job measures only what is missing.
# The points are measured into the group's store (results/shared/<group>/runs), then linked into
# place: Snakemake deletes a failed job's outputs, the store keeps what was measured.
for group, members in GRID.shared.items():

    rule:
        name:
            shared_rule_name(group)
        input:
            specs=ancient([SPEC.format(**point_wildcards(p)) for p in members]),
        output:
            [update(directory(RUN.format(**point_wildcards(p)))) for p in members],
        log:
            f"logs/measure_shared/{group}.log",
        conda:
            "../envs/vllm.yaml"
        resources:
            **shared_resources(members),
        params:
            identity=[GRID.identity(p) for p in members],
            retry=[latest_failed_attempt(shared_store(group, p)) for p in members],
            points=shared_points_args(members),
            work=f"{RESULTS}/shared/{group}",
            attempts=f"logs/measure_shared/{group}.attempts.log",
        shell:
            '(echo "=== attempt at $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) ===";'
            " jouleflow campaign measure-shared --work-dir {params.work} {params.points}"
            " --time-limit-min {resources.runtime}) 2>&1 | tee -a {params.attempts} > {log}"
