# Paths and the analysis environment that every rule file uses. The Snakefile includes this first;
# a workflow that includes only rules/compare.smk (comparisons of published results, no campaign)
# includes it before that file.

RESULTS = config.get("results_dir", "results")  # the schema's default, for a config without one
SUMMARY = f"{RESULTS}/summary/summary.parquet"
ENV_ANALYSIS = "../envs/analysis.yaml"
