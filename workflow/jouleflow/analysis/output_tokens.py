"""The mean output length behind energy per response: the run's requests, not only those that finished.

ML.ENERGY's energy per response is J/token x the mean output length of the run's requests. A burst
run completes every request, but a saturating load stops with requests in flight, and those are the
long ones: the completed requests' mean is biased low. Where every sent request had its length set
(ignore_eos with a max_tokens, as with dummy weights and the published histograms), the mean of the
sent requests' targets is what each would have produced, unless a completed request did not
produce its target. The targets come from requests.parquet (since trace schema 5) or, for older
runs, from the run directory's request_set.parquet (docs/method.md, Figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from jouleflow import traces
from jouleflow.files import sha256_file
from jouleflow.records import RunRecord

TARGETS = "request targets"
COMPLETED = "completed requests"
REQUEST_SET_FILE = "request_set.parquet"


@dataclass(frozen=True)
class OutputTokens:
    mean: float | None
    source: str | None  # TARGETS | COMPLETED; None without a completed request
    bias: str | None = None  # why the completed mean is biased low, when it is (for a validity flag)


def mean_output_tokens(requests: pl.DataFrame, record: RunRecord, run_dir: Path) -> OutputTokens:
    """The run's mean output tokens and where it came from (module docstring)."""
    sent = requests.filter(pl.col("t_send").is_not_null())
    ok = requests.filter(pl.col("ok").fill_null(False))
    targets, why_not = _targets(sent, record, run_dir)
    if targets is not None:
        short = _off_target(ok, targets)
        if short:
            targets, why_not = None, short
    if targets is not None:
        return OutputTokens(float(targets["max_tokens"].mean()), TARGETS)
    mean = float(ok["output_tokens"].mean()) if ok.height else None
    stopped = sent.filter(pl.col("stopped").fill_null(False) & ~pl.col("ok").fill_null(False))
    if not stopped.height or mean is None:
        return OutputTokens(mean, COMPLETED if mean is not None else None)
    bias = (
        f"mean output tokens {mean:.1f} is that of the {ok.height} completed requests; the "
        f"{stopped.height} stopped in flight (after {stopped['output_tokens'].mean():.1f} tokens on "
        f"average) are left out, so energy per response is biased low ({why_not})"
    )
    return OutputTokens(mean, COMPLETED, bias)


def _targets(sent: pl.DataFrame, record: RunRecord, run_dir: Path) -> tuple[pl.DataFrame | None, str]:
    """(request_id, max_tokens) of every sent request when each had its length set; else why not."""
    if not sent.height:
        return None, "no request was sent"
    if sent["ignore_eos"].null_count() == sent.height:  # a trace older than schema 5
        sent = sent.drop("max_tokens", "ignore_eos")
        found, why_not = _request_set(record, run_dir)
        if found is None:
            return None, why_not
        sent = sent.join(found, on="request_id", how="left")
        if sent["ignore_eos"].null_count():
            return None, f"{REQUEST_SET_FILE} lacks some of the sent requests"
    if not (sent["ignore_eos"].fill_null(False).all() and sent["max_tokens"].null_count() == 0):
        return None, "the requests' lengths were not all set (ignore_eos with max_tokens)"
    return sent.select("request_id", "max_tokens"), ""


def _request_set(record: RunRecord, run_dir: Path) -> tuple[pl.DataFrame | None, str]:
    """An older run's targets from the request set in its directory, if it is the one it replayed."""
    path = run_dir / REQUEST_SET_FILE
    if not path.is_file():
        return None, f"no request targets: requests.parquet predates them and there is no {REQUEST_SET_FILE}"
    info = record.request_set or record.config.get("request_set")  # (older runs: under config)
    recorded = info.get("sha256") if isinstance(info, dict) else None
    if recorded and sha256_file(path) != recorded:
        return None, f"{REQUEST_SET_FILE}'s sha256 is not the one run.json records"
    try:
        table = traces.read_table(path, traces.REQUEST_SET)
    except traces.TraceError as exc:
        return None, str(exc)
    return pl.DataFrame(table.select(["request_id", "max_tokens", "ignore_eos"])), ""


def _off_target(ok: pl.DataFrame, targets: pl.DataFrame) -> str:
    """Completed requests that did not produce their target (an engine that did not honour
    ignore_eos, a clipped context): then the targets are not the requests' lengths."""
    done = ok.select("request_id", "output_tokens").join(targets, on="request_id", how="inner")
    off = done.filter(pl.col("output_tokens") != pl.col("max_tokens")).height
    return f"{off} of {done.height} completed requests did not produce their max_tokens" if off else ""
