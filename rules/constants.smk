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


def published_files(path):
    """What reads ML.ENERGY's published data at `path` takes its files as input. A directory's
    mtime moves whenever a copy or checkout touches it (seen on a GPU host that gets the tree copied per
    call: every rerun redid the published overlays), a file's only when it is rewritten. A path with no
    files is itself the input, so Snakemake names it as missing."""
    from pathlib import Path

    root = Path(path)
    files = sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    return files or [str(path)]


# A params value: changing the rates reruns the summary and the tables that carry cost, nothing else.
COST_OPTION = _cost_option()
