"""`jouleflow campaign measure-shared`: a group's batch sizes on one vLLM server (campaign mode
`measurement.shared_server`, plan/shared.py), supervised as `campaign measure` supervises one point.

    jouleflow campaign measure-shared --work-dir DIR --point SPEC RUN_DIR FAILURE_LOG [--point ...]

The sweep measures into the group's store (`WORK_DIR/runs/<batch>`, plan/shared.py), which
Snakemake does not own: a cancelled invocation, whose job outputs Snakemake deletes, loses none of
the points measured before. Each point goes through the run guard there first: a finished run that
matches its spec is kept, one that does not is refused (nothing is measured), a failed one is moved
aside and measured again. The points left are measured by one `jouleflow measure llm-sweep --run ...`
child, in increasing batch size, with the job's deadline; every one of them then ends as a run (its
own, its session's failed run moved into place, or a failed record naming why, as in
docs/pipeline.md), and every point is linked into its RUN_DIR.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register_shared(sub) -> None:
    s = sub.add_parser(
        "measure-shared",
        help="measure a group's batch sizes on one vLLM server unless finished runs are there",
    )
    s.add_argument(
        "--point",
        nargs=3,
        action="append",
        required=True,
        metavar=("SPEC", "RUN_DIR", "FAILURE_LOG"),
        help="one grid point: its job spec, its run directory, its failure log (repeat per batch size)",
    )
    s.add_argument(
        "--work-dir", type=Path, required=True, help="the shared server's logs and batch-limit file"
    )
    s.add_argument(
        "--time-limit-min",
        type=float,
        help="the job's time limit: the sweep is stopped a margin before it, unfinished points recorded failed",
    )
    s.set_defaults(func=run_measure_shared)


def run_measure_shared(args: argparse.Namespace) -> int:
    from jouleflow.cli import CLIError
    from jouleflow.cli.campaign import Attempted, load_spec
    from jouleflow.plan import attempt
    from jouleflow.plan.runguard import StaleRunError, archive_failed, decide
    from jouleflow.plan.shared import adopt_in_place, publish, store_dir
    from jouleflow.records import IDENTITY_KEYS
    from jouleflow.traces import is_complete_run

    points = [(load_spec(Path(spec)), Path(run), Path(log)) for spec, run, log in args.point]
    first = points[0][0].to_dict()
    for spec, run_dir, _ in points[1:]:
        other = spec.to_dict()
        for key in IDENTITY_KEYS:
            if key != "batch_size" and other[key] != first[key]:
                raise CLIError(
                    f"{run_dir}: {key} is {other[key]!r}, the group's first point has {first[key]!r}:"
                    " one shared server measures one task, model, GPU and precision"
                )
    todo: list[tuple[Path, Attempted]] = []
    for (spec, run_dir, failures), (spec_path, _, _) in zip(points, args.point, strict=True):
        store = store_dir(args.work_dir, run_dir)
        for partial in attempt.partials(store):
            attempt.log_failure(
                failures, run_dir, "failed", f"an earlier attempt was killed (left {partial.name})"
            )
        try:
            # A finished run already in place but not in the store (measured before the store
            # existed, or put there from another machine or the bundle) is judged as it stands.
            adopted = adopt_in_place(spec, run_dir, store)
            decision = decide(spec, store, "measure")
        except StaleRunError as exc:
            raise CLIError(str(exc)) from None
        if adopted:
            print(adopted, file=sys.stderr)
        if decision.action == "keep":
            print(decision.detail, file=sys.stderr)
            continue
        if decision.action == "retry":
            print(f"measuring again; the failed attempt is kept at {archive_failed(store)}", file=sys.stderr)
        todo.append((Path(spec_path), Attempted(spec, store, failures)))
    if todo:
        todo.sort(key=lambda item: item[1].spec.batch_size)
        argv = [sys.executable, "-m", "jouleflow", "measure", "llm-sweep", "--no-progress"]
        argv += ["--work-dir", str(args.work_dir)]
        for spec_path, point in todo:
            argv += ["--run", str(spec_path), str(point.run_dir)]
        print("+ " + " ".join(argv[2:]), file=sys.stderr, flush=True)
        deadline_s = attempt.deadline_s(args.time_limit_min) if args.time_limit_min else None
        result = attempt.run_child(argv, deadline_s)
        if attempt.bad_input(result) and not any(is_complete_run(p.run_dir) for _, p in todo):
            return attempt.BAD_INPUT  # the child named the key or file; nothing was measured
        for _, point in todo:
            point.settle(result, deadline_s)
    for _, run_dir, _ in points:
        try:
            print(publish(store_dir(args.work_dir, run_dir), run_dir), file=sys.stderr)
        except StaleRunError as exc:
            raise CLIError(str(exc)) from None
    return 0
