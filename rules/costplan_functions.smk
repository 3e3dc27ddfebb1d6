# Parameter functions of the recommend-all and power-budget rules in rules/compare.smk (config
# compare.recommend / compare.budget; docs/compare.md). Cost comes from analysis.cost (COST_OPTION).


def costplan_entry(section, name):
    for item in COMPARE.get(section) or []:
        if str(item["name"]) == name:
            return item
    raise ValueError(f"config compare.{section}: no entry for {name!r}")


def recommend_all_opts(wildcards):
    e = costplan_entry("recommend", wildcards.compare_name)
    targets = " ".join(
        compare_opt("--target", f"{task}={','.join(str(d) for d in durations)}")
        for task, durations in (e.get("targets") or {}).items()
    )
    # No --allow-empty: recommend --all always writes its table (each row's status says why).
    opts = [
        compare_opt(flag, value)
        for flag, value in (
            ("--gpu", e.get("gpu")),
            ("--num-gpus", e.get("num_gpus")),
            ("--tasks", e.get("tasks")),
            ("--latency-metric", e.get("latency_metric")),
        )
    ]
    return " ".join(filter(None, [*opts, targets, COST_OPTION]))


def budget_opts(wildcards):
    e = costplan_entry("budget", wildcards.compare_name)
    tasks = " ".join(compare_opt("--task", t) for t in e.get("tasks") or [])
    opts = compare_opts(
        ("--power", e["power"]),
        ("--pue", e.get("pue")),
        ("--deadline", e["deadline"]),
        ("--latency-metric", e.get("latency_metric")),
        ("--gpu", e.get("gpu")),
        ("--num-gpus", e.get("num_gpus")),
    )
    return " ".join(filter(None, [opts, tasks, COST_OPTION]))


def costplan_targets():
    """Outputs of the compare.recommend and compare.budget entries (part of compare_targets)."""
    outputs = [
        f"{COMPARE_DIR}/recommend-{e['name']}.{ext}"
        for e in COMPARE.get("recommend") or []
        for ext in ("csv", "md", "json")
    ]
    outputs += [
        f"{COMPARE_DIR}/budget-{e['name']}.{ext}"
        for e in COMPARE.get("budget") or []
        for ext in ("csv", "md", "json", "png", "svg")
    ]
    return outputs
