# jouleflow: energy of generative-AI inference, from a campaign config to tables, figures and a report.
#   snakemake --cores all                                          reproduce the bundled campaign
#   snakemake --cores all --configfile config/quickstart.yaml      measure on the local GPU(s)
#   snakemake --cores all --profile slurm                          one GPU job per grid point
# How the grid, sources, reruns and guards work: docs/pipeline.md; every config key: docs/config.md.

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# jouleflow's validation: the error leads with key, value and a valid example; the full schema
# error only with `snakemake --verbose` or JOULEFLOW_VERBOSE=1 (docs/config.md).
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
from jouleflow.plan.config import ConfigSchemaError, validate_config  # noqa: E402

try:
    validate_config(
        config,
        Path(workflow.basedir) / "config/schema/config.schema.yaml",
        verbose=bool(getattr(getattr(workflow, "output_settings", None), "verbose", False)) or None,
    )
except ConfigSchemaError as exc:
    raise WorkflowError(f"Invalid config: {exc}") from None


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
