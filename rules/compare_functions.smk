# Input and parameter functions of rules/compare.smk (kept apart: Snakemake's linter wants
# functions and rules in separate files).

import re
import shlex


def compare_summary():
    if (COMPARE.get("published") or {}).get("path"):
        return f"{COMPARE_DIR}/published/summary.parquet"
    # The campaign's summary table (rules/summary.smk writes it) when no other source is configured.
    return COMPARE.get("summary") or SUMMARY


def compare_slug(text):
    """Model ids as file names: meta-llama/Llama-3.1-8B -> meta-llama--Llama-3.1-8B."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", re.sub(r"[\\/]", "--", str(text)))


def compare_entry(section, wildcard):
    """The config entry a wildcard names: `name` for gpus/scaling, the model's slug for tasks."""
    for item in COMPARE.get(section) or []:
        key = compare_slug(item["model"]) if section == "tasks" else str(item["name"])
        if key == wildcard:
            return item
    raise ValueError(f"config compare.{section}: no entry for {wildcard!r}")


def compare_opt(flag, value):
    """A quoted CLI option, or nothing when the config leaves it unset."""
    if value is None or value == [] or value == "" or value == {}:
        return ""
    if isinstance(value, dict):
        value = ",".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return f"{flag} {shlex.quote(str(value))}"


def compare_opts(*pairs):
    return " ".join(
        filter(None, [compare_opt(flag, value) for flag, value in pairs] + [compare_common_opts()])
    )


def compare_gpus_opts(wildcards):
    e = compare_entry("gpus", wildcards.compare_name)
    return compare_opts(
        ("--a", e["a"]),
        ("--b", e["b"]),
        ("--latency", e.get("latency")),
        ("--deadlines", e["deadlines"]),
        ("--energy", e.get("energy")),
        ("--tasks", e.get("tasks")),
    )


def compare_precision_opts(wildcards):
    e = COMPARE.get("precision") or {}
    return compare_opts(
        ("--metric", wildcards.compare_metric),
        ("--buckets", e.get("buckets")),
        ("--tasks", e.get("tasks")),
        ("--exclude-models", e.get("exclude_models")),
        ("--min-batch", e.get("min_batch")),
    )


def compare_scaling_opts(wildcards):
    e = compare_entry("scaling", wildcards.compare_name)
    return compare_opts(
        ("--energy", e.get("energy")), ("--latency", e.get("latency")), ("--tasks", e.get("tasks"))
    )


def compare_tasks_opts(wildcards):
    e = compare_entry("tasks", wildcards.compare_name)
    return compare_opts(
        ("--model", e["model"]),
        ("--gpu", e.get("gpu")),
        ("--num-gpus", e.get("num_gpus")),
        ("--tasks", e.get("tasks")),
        ("--reference", e.get("reference")),
    )


def compare_moe_opts(wildcards):
    e = COMPARE.get("moe") or {}
    return compare_opts(
        ("--energy", e.get("energy")),
        ("--tolerance", e.get("tolerance")),
        ("--num-gpus", e.get("num_gpus")),
        ("--tasks", e.get("tasks")),
    )


def compare_tdp_opts(wildcards):
    e = COMPARE.get("tdp") or {}
    return compare_opts(("--tdp", e.get("tdp_w")), ("--tasks", e.get("tasks")))


def compare_common_opts():
    return "--allow-empty" if COMPARE.get("allow_empty", True) else ""


def compare_outputs(stem):
    return [f"{COMPARE_DIR}/{stem}.{ext}" for ext in ("csv", "md", "png", "svg")]


def compare_targets():
    """Every comparison output the config asks for (add to `rule all`)."""
    stems = [f"gpus-{g['name']}" for g in COMPARE.get("gpus") or []]
    if "precision" in COMPARE:  # present, even empty ({}), means: run with the defaults
        precision = COMPARE["precision"] or {}
        stems += [f"precision-{m}" for m in precision.get("metrics") or ["energy_per_token", "median_itl"]]
    stems += [f"scaling-{s['name']}" for s in COMPARE.get("scaling") or []]
    stems += [f"tasks-{compare_slug(t['model'])}" for t in COMPARE.get("tasks") or []]
    stems += [name for name in ("moe", "tdp") if name in COMPARE]
    stems += compare_aggregates_stems()
    return (
        [path for stem in stems for path in compare_outputs(stem)]
        + compare_longitudinal_targets()
        + costplan_targets()
    )


# --- compare longitudinal: two campaigns (each a summary Parquet or ML.ENERGY published data) ---


def compare_longitudinal_entries():
    """compare.longitudinal as a list of named entries (a single mapping is one entry, `main`)."""
    entries = COMPARE.get("longitudinal") or []
    if isinstance(entries, dict):
        entries = [{"name": "main", **entries}]
    return entries


def compare_longitudinal_source(side):
    """A side's summary: a Parquet path, or {published: DIR} imported into results/compare/imported/."""
    if isinstance(side, dict):
        return f"{COMPARE_DIR}/imported/{compare_source_slug(side['published'])}/summary.parquet"
    return str(side)


def compare_source_slug(path):
    """A published directory as one path segment: resources/mlenergy-v2 -> resources--mlenergy-v2."""
    return compare_slug(str(path)).strip("-")


def compare_longitudinal_summary(side):
    def summary(wildcards):
        e = compare_entry_longitudinal(wildcards.compare_name)
        return compare_longitudinal_source(e[side])

    return summary


def compare_entry_longitudinal(name):
    for item in compare_longitudinal_entries():
        if str(item["name"]) == name:
            return item
    raise ValueError(f"config compare.longitudinal: no entry for {name!r}")


def compare_published_files(wildcards):
    """compare.published.path's files (none when unset)."""
    path = (COMPARE.get("published") or {}).get("path")
    return published_files(path) if path else []


def compare_imported_dir(wildcards):
    """The published directory whose slug names this import."""
    for e in compare_longitudinal_entries():
        for side in (e["baseline"], e["challenger"]):
            if isinstance(side, dict) and compare_source_slug(side["published"]) == wildcards.compare_source:
                return side["published"]
    raise ValueError(f"config compare.longitudinal: no published source {wildcards.compare_source!r}")


def compare_imported_files(wildcards):
    return published_files(compare_imported_dir(wildcards))


def compare_longitudinal_opts(wildcards):
    e = compare_entry_longitudinal(wildcards.compare_name)
    return compare_opts(
        ("--aliases", e.get("aliases")),
        ("--ignore", e.get("ignore")),
        ("--tasks", e.get("tasks")),
        ("--models", e.get("models")),
        ("--gpus", e.get("gpus")),
        ("--baseline-label", e.get("baseline_label")),
        ("--challenger-label", e.get("challenger_label")),
    )


def compare_longitudinal_aliases(wildcards):
    """A user's alias file is an input: editing it reruns the comparison."""
    return compare_entry_longitudinal(wildcards.compare_name).get("aliases") or []


def compare_longitudinal_targets():
    return [p for e in compare_longitudinal_entries() for p in compare_outputs(f"longitudinal-{e['name']}")]


# Per-task aggregates over models (task-aggregates, modality, memory-batch, spread).


def compare_task_aggregates_opts(wildcards):
    e = compare_entry("task_aggregates", wildcards.compare_name)
    return compare_opts(
        ("--gpu", e.get("gpu")),
        ("--select", e.get("select")),
        ("--ratios", e.get("ratios")),
        ("--tasks", e.get("tasks")),
    )


def compare_modality_opts(wildcards):
    e = compare_entry("modality", wildcards.compare_name)
    return compare_opts(
        ("--pair", e["pairs"]),
        ("--modality-tasks", e.get("modality_tasks")),
        ("--text-task", e.get("text_task")),
        ("--gpu", e.get("gpu")),
        ("--batch-sizes", e.get("batch_sizes")),
    )


def compare_memory_batch_opts(wildcards):
    e = COMPARE.get("memory_batch") or {}
    return compare_opts(("--energy", e.get("energy")), ("--gpu", e.get("gpu")), ("--tasks", e.get("tasks")))


def compare_spread_opts(wildcards):
    e = COMPARE.get("spread") or {}
    return compare_opts(
        ("--energy", e.get("energy")),
        ("--gpu", e.get("gpu")),
        ("--contrasts", e.get("contrasts")),
        ("--tasks", e.get("tasks")),
    )


def compare_aggregates_stems():
    stems = [f"task-aggregates-{t['name']}" for t in COMPARE.get("task_aggregates") or []]
    stems += [f"modality-{m['name']}" for m in COMPARE.get("modality") or []]
    stems += [
        stem for key, stem in (("memory_batch", "memory-batch"), ("spread", "spread")) if key in COMPARE
    ]
    return stems
