# jouleflow: energy of generative-AI inference, from a campaign config to tables, figures and a report.
#   snakemake --cores all                                          reproduce the bundled campaign
#   snakemake --cores all --configfile config/quickstart.yaml      measure on the local GPU(s)
#   snakemake --cores all --profile slurm                          one GPU job per grid point
# How the grid, sources, reruns and guards work: docs/pipeline.md; every config key: docs/config.md.

from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema/config.schema.yaml")


report: "report/workflow.rst"


include: "rules/constants.smk"
include: "rules/common.smk"
include: "rules/measure.smk"
include: "rules/energy.smk"
include: "rules/attribution.smk"
include: "rules/summary.smk"
include: "rules/frontier.smk"
include: "rules/figures.smk"
include: "rules/report.smk"
# Cross-configuration analyses (GPU generations, precision, scaling, tasks, MoE, TDP).
include: "rules/compare.smk"


rule all:
    default_target: True
    input:
        all_outputs,
