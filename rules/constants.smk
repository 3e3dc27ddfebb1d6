# Paths and the analysis environment that every rule file uses. The Snakefile includes this first;
# a workflow that includes only rules/compare.smk (comparisons of published results, no campaign)
# includes it before that file.

RESULTS = config.get("results_dir", "results")  # the schema's default, for a config without one
SUMMARY = f"{RESULTS}/summary/summary.parquet"
ENV_ANALYSIS = "../envs/analysis.yaml"


def _cost_option():
    """analysis.cost as an inline `--cost` mapping (JSON), "" when unset (docs/config.md#cost)."""
    import json
    import shlex

    cost = (config.get("analysis") or {}).get("cost")
    return f"--cost {shlex.quote(json.dumps(cost, sort_keys=True))}" if cost else ""


# A params value: changing the rates reruns the summary and the tables that carry cost, nothing else.
COST_OPTION = _cost_option()
