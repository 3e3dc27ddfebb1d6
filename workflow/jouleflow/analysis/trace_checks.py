"""Checks of a run's traces before accounting (docs/method.md, "Trace checks").

A corrupted trace must never give a valid-looking figure. Each finding has one of three outcomes:

- no right answer, the analysis stops: `TraceError` naming the file (NaN/inf in a time or gauge of
  requests/tokens/server/batches; one key carrying two different rows);
- the files contradict each other: the blocking flag `trace-inconsistent` (chunks outside their
  request's [t_send, t_end], chunks of unknown requests, token totals that disagree, power rows of
  GPUs that run.json does not list, which are then left out of the energy);
- a repair gives exactly the clean answer: done, with the informational flag `trace-repaired`
  (identical rows of power, requests, server and batches dropped; NaN/inf power_w set to null,
  which only drops the power-integral cross-check; samples with a NaN/inf counter dropped, the
  counter interpolated across them). The last is exact only away from the window's edges, where
  the counter is interpolated between the two samples around the edge: a dropped sample there
  raises the blocking `power-trace-gap` instead (`check_edges`).

tokens.parquet is never de-duplicated: one network read can carry several chunks of a request,
which then share timestamp and count, so identical rows are legitimate (thousands per real run).
Doubled chunks show up as token totals that disagree with requests.parquet instead.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import polars as pl

from jouleflow import traces
from jouleflow.analysis import validity
from jouleflow.analysis.validity import Flags

if TYPE_CHECKING:
    from jouleflow.analysis.accounting import RunData
    from jouleflow.records import RunRecord

# Chunk and request times come from the same client clock; allow only timer jitter.
CLOCK_TOLERANCE_S = 1e-3
EXAMPLES = 3

# Columns where NaN/inf has no right replacement: the analysis stops.
STRICT_FINITE = {
    "power": ("t",),  # a sample with an unknown time cannot be placed
    "requests": ("t_send", "t_first_token", "t_end"),
    "tokens": ("t",),
    "server": ("t", "running"),
    "batches": ("t_start", "t_end"),
}
# One row per key; identical duplicate rows are dropped, differing ones stop the analysis.
KEYS = {
    "power": ("gpu", "t"),
    "requests": ("request_id",),
    "server": ("t",),
    "batches": ("batch_index",),
}


@dataclass
class CheckedRun:
    run: RunData  # with the repairs applied
    flags: Flags
    dropped_power_t: dict[int, list[float]] = field(default_factory=dict)  # per GPU


def _file(run: RunData, attr: str) -> str:
    """The full path, for errors; flags name the bare file (summary.json must not depend on the path)."""
    return str(run.run_dir / f"{attr}.parquet")


def _non_finite(df: pl.DataFrame, columns: tuple[str, ...]) -> pl.Expr | None:
    """True on rows with NaN or +-inf in any of `columns` (nulls are not NaN: they stay)."""
    exprs = [
        (pl.col(c).is_nan() | pl.col(c).is_infinite()).fill_null(False)
        for c in columns
        if c in df.columns and df.schema[c].is_float()
    ]
    return pl.any_horizontal(exprs) if exprs else None


def _examples(values: list[Any]) -> str:
    shown = ", ".join(str(v) for v in values[:EXAMPLES])
    return shown + (", ..." if len(values) > EXAMPLES else "")


def _check_finite(run: RunData, attr: str, df: pl.DataFrame) -> None:
    bad = _non_finite(df, STRICT_FINITE[attr])
    if bad is None:
        return
    rows = df.with_row_index("row").filter(bad)
    if rows.height:
        per_column = {
            c: n
            for c in STRICT_FINITE[attr]
            if c in df.columns and (n := int((rows[c].is_nan() | rows[c].is_infinite()).sum()))
        }
        raise traces.TraceError(
            f"{_file(run, attr)}: {rows.height} row(s) with NaN/inf {per_column}, "
            f"e.g. rows {_examples(rows['row'].to_list())}; no value can stand in for them"
        )


def _repair_power(run: RunData, power: pl.DataFrame, checked: CheckedRun, notes: list[str]) -> pl.DataFrame:
    """NaN/inf power_w -> null (the counter sample stays); NaN/inf energy_j -> sample dropped."""
    bad_w = _non_finite(power, ("power_w",))
    if bad_w is not None and (n := power.select(bad_w.sum()).item()):
        gpus = sorted(set(power.filter(bad_w)["gpu"].to_list()))
        power = power.with_columns(pl.when(bad_w).then(None).otherwise(pl.col("power_w")).alias("power_w"))
        notes.append(
            f"power.parquet: {n} NaN/inf power_w reading(s) set to null; the counter is "
            f"untouched, the power_integral_j cross-check is not computed for GPU(s) {gpus}"
        )
    bad_e = _non_finite(power, ("energy_j",))
    if bad_e is None or not (dropped := power.filter(bad_e)).height:
        return power
    for (gpu,), part in dropped.group_by(["gpu"]):
        checked.dropped_power_t[int(gpu)] = sorted(part["t"].to_list())
    per_gpu = {g: len(ts) for g, ts in sorted(checked.dropped_power_t.items())}
    notes.append(
        f"power.parquet: dropped {dropped.height} sample(s) with a NaN/inf energy_j "
        f"(per GPU {per_gpu}); the counter is interpolated across them"
    )
    return power.filter(~bad_e)


def _dedupe(run: RunData, attr: str, df: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    if df.is_duplicated().any():
        before = df.height
        df = df.unique(maintain_order=True)
        notes.append(f"{attr}.parquet: dropped {before - df.height} identical duplicate row(s)")
    keys = [k for k in KEYS[attr] if k in df.columns]
    clash = df.filter(df.select(keys).is_duplicated())
    if clash.height:
        examples = clash.select(keys).unique(maintain_order=True).rows()
        raise traces.TraceError(
            f"{_file(run, attr)}: {len(examples)} {'/'.join(keys)} value(s) appear on differing rows, "
            f"e.g. {_examples(examples)}; the analysis cannot tell which row is right"
        )
    return df


def _job_gpus(record: RunRecord) -> set[int]:
    return {int(g.get("index", position)) for position, g in enumerate(record.gpus)}


def _foreign_gpu_rows(run: RunData, power: pl.DataFrame, problems: list[str]) -> pl.DataFrame:
    """Leave out rows of GPUs that run.json does not list (when it lists any)."""
    listed = _job_gpus(run.record)
    if not listed:
        return power
    extra = power.filter(~pl.col("gpu").is_in(sorted(listed)))
    if extra.height == 0:
        return power
    problems.append(
        f"power.parquet: {extra.height} row(s) of GPU(s) {sorted(set(extra['gpu'].to_list()))} "
        f"that run.json provenance.gpus does not list (job GPUs {sorted(listed)}); "
        "left out of the energy, but which GPUs the job used is uncertain"
    )
    return power.filter(pl.col("gpu").is_in(sorted(listed)))


def _where(chunk: dict[str, Any]) -> str:
    t, send, end = chunk["t"], chunk["t_send"], chunk["t_end"]
    if send is None or end is None:
        return f"request {chunk['request_id']}: a chunk while t_send/t_end is null"
    gap, side = (send - t, "before t_send") if t < send else (t - end, "after t_end")
    return f"request {chunk['request_id']}: a chunk {gap:.3f} s {side}"


def _tokens_vs_requests(run: RunData, problems: list[str]) -> None:
    req, tok = run.requests, run.tokens
    if req is None or tok is None:
        return
    tokens_file, requests_file = "tokens.parquet", "requests.parquet"
    known = req.select("request_id", "t_send", "t_end", pl.lit(True).alias("known"))
    chunks = tok.join(known, on="request_id", how="left")
    orphans = chunks.filter(pl.col("known").is_null())
    if orphans.height:
        ids = orphans["request_id"].unique(maintain_order=True).to_list()
        problems.append(
            f"{tokens_file}: {orphans.height} chunk(s) of {len(ids)} request id(s) absent from "
            f"{requests_file}, e.g. {_examples(ids)}"
        )
    tol = CLOCK_TOLERANCE_S
    # A chunk of a request never sent or never ended (null time) is outside as well.
    outside = chunks.filter(
        pl.col("known").is_not_null()
        & ((pl.col("t") < pl.col("t_send") - tol) | (pl.col("t") > pl.col("t_end") + tol)).fill_null(True)
    )
    if outside.height:
        ids = outside["request_id"].unique(maintain_order=True).to_list()
        first_per_request = outside.unique("request_id", keep="first", maintain_order=True).head(EXAMPLES + 1)
        problems.append(
            f"{tokens_file}: {outside.height} chunk(s) of {len(ids)} request(s) lie outside their "
            f"request's [t_send, t_end] in {requests_file} (tolerance {tol * 1e3:g} ms), "
            f"e.g. {_examples([_where(r) for r in first_per_request.iter_rows(named=True)])}"
        )
    sums = tok.group_by("request_id").agg(pl.col("n_tokens").cast(pl.Int64).sum().alias("chunk_tokens"))
    ok = req.filter(pl.col("ok").fill_null(False)).join(sums, on="request_id", how="left")
    disagree = ok.filter(pl.col("output_tokens") != pl.col("chunk_tokens").fill_null(0))
    if disagree.height:
        ex = [
            f"request {r['request_id']}: {r['output_tokens']} vs {r['chunk_tokens'] or 0}"
            for r in disagree.head(EXAMPLES).iter_rows(named=True)
        ]
        problems.append(
            f"{disagree.height} of {ok.height} ok request(s) have output_tokens in {requests_file} "
            f"different from the sum of their chunks in {tokens_file}, e.g. {_examples(ex)}"
        )


def check_run(run: RunData) -> CheckedRun:
    """The run with repairs applied, and the flags the checks raised (TraceError when hopeless)."""
    checked = CheckedRun(run, Flags())
    notes: list[str] = []
    problems: list[str] = []
    frames: dict[str, pl.DataFrame | None] = {}
    for attr in ("power", "requests", "tokens", "server", "batches"):
        df = getattr(run, attr)
        if df is not None:
            _check_finite(run, attr, df)
            if attr == "power":
                df = _repair_power(run, df, checked, notes)
            if attr in KEYS:
                df = _dedupe(run, attr, df, notes)
            if attr == "power":
                df = _foreign_gpu_rows(run, df, problems)
        frames[attr] = df
    checked.run = run = replace(run, **frames)
    _tokens_vs_requests(run, problems)
    for problem in problems:
        checked.flags.raise_flag(validity.TRACE_INCONSISTENT, problem)
    for note in notes:
        checked.flags.raise_flag(validity.TRACE_REPAIRED, note)
    return checked


def check_edges(checked: CheckedRun, edges: list[float]) -> None:
    """`power-trace-gap` when a dropped power sample lay between the two kept samples around an edge.

    There the counter at the edge would be interpolated over a wider gap than was measured, so the
    repaired figure could differ from the clean one; inside a window the counter's steps telescope
    and dropping samples changes nothing.
    """
    power = checked.run.power
    if not checked.dropped_power_t or power is None:
        return
    for gpu, dropped in sorted(checked.dropped_power_t.items()):
        kept = sorted(power.filter(pl.col("gpu") == gpu)["t"].to_list())
        if not kept:  # no samples left: the accounting flags that GPU (or it is not the job's)
            continue
        hits = []
        for edge in edges:
            i = bisect_right(kept, edge)
            lo = kept[i - 1] if i else float("-inf")
            hi = kept[i] if i < len(kept) else float("inf")
            if lo != edge and any(lo < d < hi for d in dropped):
                hits.append(edge)
        if hits:
            checked.flags.raise_flag(
                validity.POWER_TRACE_GAP,
                f"GPU {gpu}: a sample dropped for a NaN/inf counter lay next to window edge(s) "
                f"{_examples(hits)}; the counter there is not measured",
            )
