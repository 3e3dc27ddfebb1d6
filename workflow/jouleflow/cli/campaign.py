"""Campaign plumbing the Snakemake rules call: run guard + measurement, reference copies, the
summary table, the grid plan and the provenance table.

    jouleflow summarize [RUN_DIR ...] [--jobs results/grid/jobs.tsv] -o summary.parquet [--csv summary.csv]
    jouleflow campaign measure SPEC RUN_DIR [--after SMALLER_BATCH_RUN_DIR] [--kind llm|diffusion]
    jouleflow campaign fetch-reference BUNDLED_RUN_DIR RUN_DIR [--spec SPEC]
    jouleflow campaign plan [--configfile FILE ...] [--jobs jobs.tsv] [--skipped skipped.tsv]
    jouleflow campaign provenance --jobs jobs.tsv -o provenance.csv
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jouleflow.records import JobSpec


def register(subparsers) -> None:
    s = subparsers.add_parser(
        "summarize",
        help="one summary row per run (the union of all runs) into a Parquet table",
        description="Summary table: one traces.SUMMARY row per run, from run.json + summary.json.",
    )
    s.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR", help="run dirs (with summary.json)")
    s.add_argument(
        "--jobs", type=Path, help="the pipeline's jobs table (run_dir, energy_json, registry facts)"
    )
    s.add_argument("-o", "--output", type=Path, required=True, help="summary Parquet file")
    s.add_argument("--csv", type=Path, help="also write the table as CSV")
    s.set_defaults(func=run_summarize)

    c = subparsers.add_parser("campaign", help="pipeline plumbing (called by the Snakemake rules)")
    sub = c.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")

    m = sub.add_parser("measure", help="measure one grid point unless a finished run is there")
    m.add_argument("spec", type=Path, metavar="SPEC", help="job spec JSON (jouleflow measure llm --config)")
    m.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    m.add_argument(
        "--after",
        type=Path,
        metavar="RUN_DIR",
        help="next-smaller batch size of the group (default: the spec's)",
    )
    m.add_argument(
        "--kind", choices=("llm", "diffusion"), default="llm", help="`jouleflow measure` sub-command (llm)"
    )
    m.add_argument(
        "--time-limit-min",
        type=float,
        help="the job's time limit: the measurement is stopped a margin before it and recorded failed",
    )
    m.add_argument("--failure-log", type=Path, help="append one JSON line per failed attempt here")
    m.set_defaults(func=run_measure)

    f = sub.add_parser("fetch-reference", help="copy a bundled reference run into place")
    f.add_argument("bundled", type=Path, metavar="BUNDLED_RUN_DIR")
    f.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    f.add_argument("--spec", type=Path, help="job spec: checks an existing copy against the config")
    f.set_defaults(func=run_fetch_reference)

    p = sub.add_parser("plan", help="print the grid a config gives (points, skipped points and why)")
    p.add_argument("--configfile", type=Path, action="append", help="config file(s), merged in order")
    p.add_argument("--schema", type=Path, default=Path("config/schema/config.schema.yaml"))
    p.add_argument("--jobs", type=Path, help="write the jobs table (TSV)")
    p.add_argument("--skipped", type=Path, help="write the skipped points (TSV)")
    p.set_defaults(func=run_plan)

    v = sub.add_parser("provenance", help="one row per run: where it came from, host, GPU, engine, versions")
    v.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR")
    v.add_argument("--jobs", type=Path, help="the pipeline's jobs table (its run_dir column)")
    v.add_argument("-o", "--output", type=Path, required=True, help="CSV table")
    v.set_defaults(func=run_provenance)


def _load_spec(path: Path) -> JobSpec:
    from jouleflow.cli import CLIError
    from jouleflow.records import JobSpec
    from jouleflow.traces import TraceError

    if not path.is_file():
        raise CLIError(f"{path}: job spec not found")
    try:
        return JobSpec.read(path)
    except TraceError as exc:  # invalid JSON, a missing identity key, a newer schema: names the file
        raise CLIError(str(exc)) from None


def run_measure(args: argparse.Namespace) -> int:
    from jouleflow.cli import CLIError
    from jouleflow.plan import attempt
    from jouleflow.plan.runguard import StaleRunError, archive_failed, decide, write_skipped_infeasible
    from jouleflow.traces import is_complete_run

    spec = _load_spec(args.spec)
    run_dir: Path = args.run_dir
    after = args.after or spec.after
    failures = args.failure_log
    # An attempt killed outright (SIGKILL of the whole job, a lost node) left only its temp dir.
    for partial in attempt.partials(run_dir):
        attempt.log_failure(
            failures, run_dir, "failed", f"an earlier attempt was killed (left {partial.name})"
        )
    try:
        decision = decide(spec, run_dir, "measure", predecessor=after)
    except StaleRunError as exc:
        raise CLIError(str(exc)) from None
    if decision.action == "keep":
        print(decision.detail, file=sys.stderr)
        return 0
    if decision.action == "skip-infeasible":
        write_skipped_infeasible(spec, run_dir, after, decision.detail)
        print(f"infeasible (not attempted, {after} was infeasible): {run_dir}", file=sys.stderr)
        return 0
    if decision.action == "retry":
        print(f"measuring again; the failed attempt is kept at {archive_failed(run_dir)}", file=sys.stderr)
    argv = [
        sys.executable,
        "-m",
        "jouleflow",
        "measure",
        args.kind,
        "--config",
        str(args.spec),
        "-o",
        str(run_dir),
    ]
    print("+ " + " ".join(argv[2:]), file=sys.stderr, flush=True)
    deadline_s = attempt.deadline_s(args.time_limit_min) if args.time_limit_min else None
    before = attempt.failed_siblings(run_dir)
    salvage = attempt.partials(run_dir)
    result = attempt.run_child(argv, deadline_s)
    if is_complete_run(run_dir):
        status, reason = attempt.run_status(run_dir)
        if status == "failed":
            attempt.log_failure(failures, run_dir, status, reason or "failed")
        for partial in salvage:  # a killed earlier attempt's logs: reported in the failure log above
            shutil.rmtree(partial, ignore_errors=True)
        return 0
    if result.returncode == attempt.BAD_INPUT and not (result.timed_out or result.interrupted):
        return attempt.BAD_INPUT  # the child named the key or file; nothing was measured
    new = sorted(attempt.failed_siblings(run_dir) - before)
    if new:
        reason = attempt.adopt(
            new[-1], run_dir, attempt.describe(result, deadline_s) if result.timed_out else None
        )
    else:
        reason = attempt.describe(result, deadline_s)
        left = [p for p in attempt.partials(run_dir) if p not in salvage] + salvage
        attempt.record_failed(spec, run_dir, reason, left, result.started)
    attempt.log_failure(failures, run_dir, "failed", reason or "failed", returncode=result.returncode)
    print(f"recorded failed: {run_dir}: {reason}", file=sys.stderr)
    return 0


def run_fetch_reference(args: argparse.Namespace) -> int:
    from jouleflow.cli import CLIError
    from jouleflow.plan.runguard import StaleRunError, copy_reference, decide

    spec = _load_spec(args.spec) if args.spec else None
    try:
        decision = decide(spec, args.run_dir, "reference", reference_run=args.bundled)
    except StaleRunError as exc:
        raise CLIError(str(exc)) from None
    if decision.action == "keep":
        print(decision.detail, file=sys.stderr)
        return 0
    try:
        copy_reference(args.bundled, args.run_dir)
    except (FileNotFoundError, FileExistsError) as exc:
        raise CLIError(str(exc)) from None
    print(f"copied {args.bundled} -> {args.run_dir}", file=sys.stderr)
    return 0


def run_summarize(args: argparse.Namespace) -> int:
    from jouleflow.analysis.summary import RunEntry, build_summary, read_jobs_table, write_summary
    from jouleflow.cli import CLIError

    entries = [RunEntry(d) for d in args.run_dirs]
    if args.jobs:
        entries += read_jobs_table(args.jobs)
    if not entries:
        raise CLIError("no runs given (RUN_DIR ... or --jobs)")
    frame = build_summary(entries)
    write_summary(frame, args.output, args.csv)
    print(f"{frame.height} run(s) -> {args.output}", file=sys.stderr)
    return 0


def run_plan(args: argparse.Namespace) -> int:
    from jouleflow.cli import CLIError
    from jouleflow.plan.config import load_config
    from jouleflow.plan.grid import GridError, build_grid
    from jouleflow.plan.gridtable import JOB_COLUMNS, SKIPPED_COLUMNS, job_rows, skipped_rows, write_tsv
    from jouleflow.plan.localgpu import LocalGpuError, resolve_local

    files = args.configfile or [Path("config/config.yaml")]
    try:
        config = load_config(files, args.schema)
        config["sweeps"] = resolve_local(config)["sweeps"]
        grid = build_grid(config)
    except (GridError, LocalGpuError) as exc:
        raise CLIError(str(exc)) from None
    sources: dict[str, int] = {}
    for point in grid.points:
        sources[point.source] = sources.get(point.source, 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in sorted(sources.items())) or "none"
    print(f"{len(grid.points)} run(s) ({counts}); {len(grid.skipped)} skipped")
    for skipped in grid.skipped:
        print(f"  skipped {skipped.point.key}: {skipped.reason}")
    if args.jobs:
        write_tsv(job_rows(grid), JOB_COLUMNS, args.jobs)
    if args.skipped:
        write_tsv(skipped_rows(grid), SKIPPED_COLUMNS, args.skipped)
    return 0


def run_provenance(args: argparse.Namespace) -> int:
    from jouleflow.analysis.provenance_table import write_provenance_csv
    from jouleflow.analysis.summary import read_jobs_table
    from jouleflow.cli import CLIError

    run_dirs = list(args.run_dirs)
    if args.jobs:
        run_dirs += [e.run_dir for e in read_jobs_table(args.jobs)]
    if not run_dirs:
        raise CLIError("no runs given (RUN_DIR ... or --jobs)")
    n = write_provenance_csv(run_dirs, args.output)
    print(f"{n} run(s) -> {args.output}", file=sys.stderr)
    return 0
