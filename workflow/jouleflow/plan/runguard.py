"""What a measurement job does with what is already on disk.

Snakemake may schedule a measurement job whose run directory is already complete (the job spec
changed, the rule's code changed, `--forcerun`). The rule marks the run directory `update()`, so
Snakemake never deletes it first; this module then decides:

- no complete run: measure it (or copy it from the bundled reference campaign);
- a complete run whose recorded config matches the job spec: keep it, do nothing;
- a complete run whose config differs: refuse (StaleRunError names the run and the keys), so a
  changed config never silently re-measures over, or silently keeps, a finished measurement;
- the next-smaller batch size of the same group ended `infeasible`: record this point as
  infeasible too, without starting a server (design.md: larger batches are skipped).

Measurement-side module: stdlib + the shared modules (traces, records, diffusion_pipelines) only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jouleflow import __version__
from jouleflow.diffusion_pipelines import FAMILIES, GENERATION_KEYS, generation_defaults
from jouleflow.files import sha256_file
from jouleflow.records import (
    IDENTITY_KEYS,
    MEASURED_KEYS,
    OPTIONAL_MEASURED_KEYS,
    JobSpec,
    RunRecord,
    read_run,
)
from jouleflow.traces import RUN_JSON, RunDirWriter, TraceError, is_complete_run, read_json, write_json

# Written into a copied reference run (and only there), so a copy is never mistaken for a measurement.
ORIGIN_JSON = "origin.json"


class StaleRunError(RuntimeError):
    """A finished run is on disk but the config now asks for something else."""


@dataclass(frozen=True)
class Decision:
    action: str  # measure | copy | keep | retry | skip-infeasible
    detail: str = ""


def config_hash(config: dict[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _normal(value: Any) -> Any:
    """JSON's view of a value (tuples are lists, keys strings): a spec read from its file and the
    config a session recorded compare equal when they say the same thing."""
    return json.loads(json.dumps(value, default=str))


def _same(wanted: Any, recorded: Any) -> bool:
    # A mapping matches when every key the spec gives matches: the measurement may record defaults too.
    if isinstance(wanted, dict) and isinstance(recorded, dict):
        return all(k in recorded and _same(v, recorded[k]) for k, v in wanted.items() if v is not None)
    return wanted == recorded


def differing_keys(spec: Mapping[str, Any], recorded: Mapping[str, Any], keys: tuple[str, ...]) -> list[str]:
    """Keys whose values differ; a key the run did not record is not counted (older schema). An
    optional key the spec leaves out (OPTIONAL_MEASURED_KEYS) is null there."""
    spec = {**dict.fromkeys(OPTIONAL_MEASURED_KEYS), **spec}
    return [k for k in keys if k in recorded and k in spec and not _same_key(k, spec[k], recorded[k])]


def with_family_defaults(
    spec: Mapping[str, Any], recorded: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A diffusion spec as the run it asks for: (spec, {key: why}) where the spec's nulls are resolved.

    A measured diffusion run records what ran (measure.diffusion_config fills the family's defaults
    in), while its spec leaves `pipeline` (detected) and the generation keys (the family's
    default) null. So `pipeline: null` accepts the family the run recorded, and a null generation
    key is that family's default in this code: a run made under an older default differs. Other
    runs, and runs of a family this code does not know, are compared as the spec says.
    """
    out, why, family = dict(spec), {}, recorded.get("pipeline")
    # A diffusion run names its family (an LLM run records no `pipeline`); only a known one has defaults.
    if not isinstance(family, str) or family not in FAMILIES:
        return out, why
    if "pipeline" in out and out["pipeline"] is None:
        out["pipeline"] = family
        why["pipeline"] = " (detected)"
    defaults = generation_defaults(family)
    for key in GENERATION_KEYS:
        if key in out and out[key] is None and defaults[key] is not None:
            out[key] = defaults[key]
            why[key] = f" (the {family} default)"
    return out, why


def _same_key(key: str, wanted: Any, recorded: Any) -> bool:
    if key == "server_max_num_seqs":
        # A shared server is sized for the points it measured at once (a later, larger batch size
        # gets its own); the batch limit is held inside the engine at a fixed capture range, so
        # only shared vs dedicated tells two measurements apart (plan/shared.py).
        return (wanted is None) == (recorded is None)
    return _same(_normal(wanted), _normal(recorded))


def _origin(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / ORIGIN_JSON
    return read_json(path) if path.is_file() else None


def as_spec(spec: JobSpec | Mapping[str, Any]) -> JobSpec:
    """A job spec as its record (a dict is validated: a missing identity key is named)."""
    return spec if isinstance(spec, JobSpec) else JobSpec.from_dict(spec)


def decide(
    spec: JobSpec | Mapping[str, Any] | None,
    run_dir: str | Path,
    source: str,
    reference_run: str | Path | None = None,
    predecessor: str | Path | None = None,
) -> Decision:
    """Raise StaleRunError, or say what to do for this job.

    source: "measure" or "reference"; reference_run: the bundled copy (source reference);
    predecessor: the run directory of the next-smaller batch size of the same group, if chained.
    spec None: no job spec to compare the finished run with (a reference copy fetched without one).
    """
    spec, run_dir = as_spec(spec) if spec is not None else None, Path(run_dir)
    if source not in ("measure", "reference"):
        raise ValueError(f"source must be 'measure' or 'reference', got {source!r}")
    if source == "reference" and reference_run is None:
        raise ValueError("source 'reference' needs the bundled run directory")
    if is_complete_run(run_dir):
        if source == "measure" and _failed(run_dir):
            # A failed attempt is no result: the job is scheduled again (--forcerun measure, a changed
            # setting), so measure again, keeping the failed attempt beside it.
            return Decision("retry", str(run_dir))
        return _check_existing(spec, run_dir, source, reference_run)
    if source == "reference":
        return Decision("copy", str(reference_run))
    # Only a configuration that does not fit stops the larger batch sizes; a crash or a timeout of
    # the smaller one says nothing about the larger, which is still tried.
    if predecessor and is_complete_run(predecessor):
        smaller = read_run(predecessor)
        if smaller.status == "infeasible":
            return Decision("skip-infeasible", str(smaller.reason or "infeasible"))
    return Decision("measure")


def run_status(run_dir: Path) -> tuple[str | None, str | None]:
    """A finished run's (status, reason); raises TraceError when its run.json cannot be read."""
    run = read_run(run_dir)
    return run.status, run.reason


def _failed(run_dir: Path) -> bool:
    # An unreadable run.json is not a failed attempt: the guard's other checks report it.
    try:
        return run_status(run_dir)[0] == "failed"
    except TraceError:
        return False


def stale_reason(
    spec: JobSpec | Mapping[str, Any] | None,
    run_dir: str | Path,
    source: str,
    reference_run: str | Path | None = None,
) -> str | None:
    """Why the finished run at run_dir no longer matches its spec (None: it matches, or nothing is
    there, or it is a failed attempt that will simply be measured again)."""
    run_dir = Path(run_dir)
    if not is_complete_run(run_dir) or (source == "measure" and _failed(run_dir)):
        return None
    try:
        _check_existing(as_spec(spec) if spec is not None else None, run_dir, source, reference_run)
    except StaleRunError as exc:
        return str(exc)
    return None


def check_campaign(runs: Iterable[tuple[JobSpec | Mapping[str, Any], str, str, str | None]]) -> list[str]:
    """Every finished run that no longer matches the config: (spec, run_dir, source, bundled run).

    The workflow calls this when it plans, so every mismatch is reported at once, on every
    invocation, until the config is reverted or the run moved away.
    """
    problems = []
    for spec, run_dir, source, reference_run in runs:
        reason = stale_reason(spec, run_dir, source, reference_run)
        if reason:
            problems.append(reason)
    return problems


def _failed_stamp(run_dir: Path) -> str:
    end = read_run(run_dir).end_time or time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(float(end)))


def latest_failed_attempt(run_dir: str | Path) -> str:
    """When the point's latest failed attempt ended ("" if none): the run itself when it failed, else
    the newest attempt kept beside it. The workflow passes this as a params value of the run job, so
    a new failure makes the job due again (the next invocation retries it), and a successful retry
    leaves the value, and so the job, as they were."""
    run_dir = Path(run_dir)
    stamps = [p.name.split(".failed-", 1)[1] for p in run_dir.parent.glob(f"{run_dir.name}.failed-*")]
    if is_complete_run(run_dir) and _failed(run_dir):
        stamps.append(_failed_stamp(run_dir))
    return max(stamps, default="")


def archive_failed(run_dir: str | Path) -> Path:
    """Move a failed attempt aside (`<batch>.failed-<end time>`), never deleting it."""
    run_dir = Path(run_dir)
    stamp = _failed_stamp(run_dir)
    dst = run_dir.with_name(f"{run_dir.name}.failed-{stamp}")
    n = 1
    while dst.exists():
        n += 1
        dst = run_dir.with_name(f"{run_dir.name}.failed-{stamp}-{n}")
    os.replace(run_dir, dst)
    return dst


def _check_existing(
    spec: JobSpec | None, run_dir: Path, source: str, reference_run: str | Path | None
) -> Decision:
    origin = _origin(run_dir)
    found = "reference" if origin else "measure"
    fix = "move it away (or delete it) to redo it, or revert the config"
    if found != source:
        what = "was copied from the bundled reference campaign" if origin else "was measured"
        raise StaleRunError(f"{run_dir}: this run {what}, but the config now gives source '{source}'; {fix}")
    recorded = read_run(run_dir).config
    asked = spec.to_dict() if spec is not None else {}
    wanted, defaulted = with_family_defaults(asked, recorded)
    keys = IDENTITY_KEYS if source == "reference" else MEASURED_KEYS
    diffs = differing_keys(wanted, recorded, keys)
    if diffs:
        shown = "; ".join(
            f"{k}: run has {recorded[k]!r}, config asks {wanted.get(k)!r}{defaulted.get(k, '')}"
            for k in diffs
        )
        raise StaleRunError(f"{run_dir}: finished run differs from the config ({shown}); {fix}")
    if origin is not None and reference_run is not None:
        bundled = Path(reference_run) / RUN_JSON
        if bundled.is_file() and sha256_file(bundled) != origin.get("run_json_sha256"):
            raise StaleRunError(
                f"{run_dir}: the bundled run {bundled.parent} changed since it was copied; {fix}"
            )
    return Decision("keep", f"{run_dir}: finished run matches the config; kept as is")


def copy_reference(src: str | Path, dst: str | Path) -> Path:
    """Copy a bundled run directory into place atomically (temp sibling, then rename)."""
    src, dst = Path(src), Path(dst)
    if not is_complete_run(src):
        raise FileNotFoundError(f"{src}: no bundled run here (run.json missing)")
    if is_complete_run(dst):
        raise FileExistsError(f"{dst}: a finished run is already there")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.partial-{socket.gethostname()}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        # copy2 keeps mtimes; run.json is copied last so a half copy never looks complete.
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(RUN_JSON, ".*"), copy_function=shutil.copy2)
        write_json(
            {"source": "reference", "bundle": str(src), "run_json_sha256": sha256_file(src / RUN_JSON)},
            tmp / ORIGIN_JSON,
        )
        shutil.copy2(src / RUN_JSON, tmp / RUN_JSON)
        if dst.exists():  # an empty leftover
            shutil.rmtree(dst)
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def write_skipped_infeasible(
    spec: JobSpec | Mapping[str, Any], run_dir: str | Path, predecessor: str | Path, because: str
) -> Path:
    """Record a point that is not attempted because a smaller batch of its group was infeasible."""
    spec, now = as_spec(spec), time.time()
    writer = RunDirWriter(Path(run_dir))
    config = spec.to_dict()
    return writer.commit(
        RunRecord(
            status="infeasible",
            reason=f"not attempted: {predecessor} (a smaller batch size) was infeasible: {because}",
            config=config,
            config_hash=config_hash(config),
            provenance={
                "host": socket.gethostname(),
                "jouleflow_version": __version__,
                "start_time": now,
                "end_time": now,
                "skipped_after": str(predecessor),
                "energy_source": None,
                "load_format": spec.load_format,
            },
        )
    )
