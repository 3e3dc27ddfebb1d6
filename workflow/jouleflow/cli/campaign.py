"""Campaign plumbing the Snakemake rules call: run guard + measurement, reference copies, the
grid plan and the provenance table.

    jouleflow campaign measure SPEC RUN_DIR [--after SMALLER_BATCH_RUN_DIR] [--kind llm|diffusion]
    jouleflow campaign measure-shared --work-dir DIR --point SPEC RUN_DIR FAILURE_LOG [--point ...]
    jouleflow campaign fetch-reference BUNDLED_RUN_DIR RUN_DIR [--spec SPEC]
    jouleflow campaign plan [--configfile FILE ...] [--jobs jobs.tsv] [--skipped skipped.tsv]
    jouleflow campaign grid-table PLANNED_CONFIG --jobs jobs.tsv --skipped skipped.tsv
    jouleflow campaign analysis-targets PLANNED_CONFIG -o targets.json
    jouleflow campaign provenance --jobs jobs.tsv -o provenance.csv
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jouleflow.plan import attempt as attempt_types
    from jouleflow.records import JobSpec


def register(subparsers) -> None:
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

    from jouleflow.cli.campaign_shared import register_shared

    register_shared(sub)

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

    g = sub.add_parser("grid-table", help="the jobs and skipped tables of the planned config")
    g.add_argument("planned", type=Path, metavar="PLANNED_CONFIG", help="results/specs/config.json")
    g.add_argument("--jobs", type=Path, required=True, help="jobs table to write (TSV)")
    g.add_argument("--skipped", type=Path, required=True, help="skipped points to write (TSV)")
    g.set_defaults(func=run_grid_table)

    t = sub.add_parser("analysis-targets", help="the latency metric and targets of each task (JSON)")
    t.add_argument("planned", type=Path, metavar="PLANNED_CONFIG", help="results/specs/config.json")
    t.add_argument(
        "-o", "--output", type=Path, required=True, help="JSON file (jouleflow frontier --targets)"
    )
    t.set_defaults(func=run_analysis_targets)

    v = sub.add_parser("provenance", help="one row per run: where it came from, host, GPU, engine, versions")
    v.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR")
    v.add_argument("--jobs", type=Path, help="the pipeline's jobs table (its run_dir column)")
    v.add_argument("-o", "--output", type=Path, required=True, help="CSV table")
    v.set_defaults(func=run_provenance)


def load_spec(path: Path) -> JobSpec:
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
    from jouleflow.plan.runguard import (
        StaleRunError,
        archive_failed,
        decide,
        write_skipped_infeasible,
    )
    from jouleflow.traces import is_complete_run

    spec = load_spec(args.spec)
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
    point = Attempted(spec, run_dir, failures)
    result = attempt.run_child(argv, deadline_s)
    if not is_complete_run(run_dir) and attempt.bad_input(result):
        return attempt.BAD_INPUT  # the child named the key or file; nothing was measured
    point.settle(result, deadline_s)
    return 0


class Attempted:
    """A point a measurement child was started for: what was beside its run directory before, and
    how its ending is recorded once the child has ended (docs/pipeline.md, "Failures")."""

    def __init__(self, spec: JobSpec, run_dir: Path, failures: Path | None) -> None:
        from jouleflow.plan import attempt

        self.spec, self.run_dir, self.failures = spec, run_dir, failures
        self.before = attempt.failed_siblings(run_dir)
        self.salvage = attempt.partials(run_dir)

    def settle(self, result: attempt_types.ChildResult, deadline_s: float | None) -> None:
        """The run the child committed, its own failed run moved into place, or a failed record."""
        from jouleflow.plan import attempt
        from jouleflow.plan.runguard import run_status
        from jouleflow.traces import is_complete_run

        run_dir, failures = self.run_dir, self.failures
        if is_complete_run(run_dir):
            status, reason = run_status(run_dir)
            if status == "failed":
                attempt.log_failure(failures, run_dir, status, reason or "failed")
            for partial in self.salvage:  # a killed earlier attempt's logs: reported in the failure log
                shutil.rmtree(partial, ignore_errors=True)
            return
        new = sorted(attempt.failed_siblings(run_dir) - self.before)
        if new:
            reason = attempt.adopt(
                new[-1], run_dir, attempt.describe(result, deadline_s) if result.timed_out else None
            )
        else:
            reason = attempt.describe(result, deadline_s)
            left = [p for p in attempt.partials(run_dir) if p not in self.salvage] + self.salvage
            attempt.record_failed(self.spec, run_dir, reason, left, result.started)
        attempt.log_failure(failures, run_dir, "failed", reason or "failed", returncode=result.returncode)
        print(f"recorded failed: {run_dir}: {reason}", file=sys.stderr)


def run_fetch_reference(args: argparse.Namespace) -> int:
    from jouleflow.cli import CLIError
    from jouleflow.plan.runguard import StaleRunError, copy_reference, decide

    spec = load_spec(args.spec) if args.spec else None
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


def run_grid_table(args: argparse.Namespace) -> int:
    from jouleflow.plan.gridtable import read_planned_grid, write_grid_tables

    grid = read_planned_grid(args.planned)
    write_grid_tables(grid, args.jobs, args.skipped)
    print(f"{len(grid.points)} runs, {len(grid.skipped)} skipped", file=sys.stderr)
    return 0


def run_analysis_targets(args: argparse.Namespace) -> int:
    from jouleflow.plan.gridtable import read_planned_grid
    from jouleflow.traces import write_json

    write_json(read_planned_grid(args.planned).analysis_targets(), args.output)
    print(f"wrote {args.output}", file=sys.stderr)
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
