"""Per-request latency metrics of an LLM run: TTFT, ITL, TPOT, E2E and their distributions.

Percentiles use linear interpolation between closest ranks (Hyndman & Fan type 7, numpy's and
polars' "linear" default): the q-quantile of sorted x[0..n-1] is x[i] + f * (x[i+1] - x[i]) with
i + f = q * (n - 1). Latencies are taken over all successful requests of the run, like ML.ENERGY.
Requests a saturate load stopped on purpose (`stopped`, in flight or never sent) are neither
successful nor failed: left out of the latencies and counted apart (`request_counts`).
"""

from __future__ import annotations

import polars as pl

PERCENTILES = (90, 95, 99)


def percentile(values: pl.Series | list[float], q: float) -> float | None:
    """q in [0, 100]; linear interpolation between closest ranks; None for no values."""
    series = values if isinstance(values, pl.Series) else pl.Series(values, dtype=pl.Float64)
    series = series.drop_nulls()
    if series.len() == 0:
        return None
    return float(series.quantile(q / 100.0, interpolation="linear"))


def distribution(values: pl.Series, name: str) -> dict[str, float | None]:
    """median/mean/p90/p95/p99 of `values` as {median_<name>_s, mean_<name>_s, p90_<name>_s, ...}."""
    values = values.drop_nulls().cast(pl.Float64)
    empty = values.len() == 0
    out: dict[str, float | None] = {
        f"median_{name}_s": None if empty else percentile(values, 50),
        f"mean_{name}_s": None if empty else float(values.mean()),
    }
    for p in PERCENTILES:
        out[f"p{p}_{name}_s"] = None if empty else percentile(values, p)
    out[f"count_{name}"] = int(values.len())
    return out


def inter_token_latencies(tokens: pl.DataFrame, request_ids: pl.Series | None = None) -> pl.Series:
    """ITLs: gaps between consecutive token-carrying chunks of a request, spread evenly over the chunk.

    A chunk carrying k tokens that arrives `gap` seconds after the previous chunk of its request
    contributes k values of gap / k. The first chunk of a request contributes none (its wait is the
    TTFT). Chunks with no tokens (role-only or usage-only chunks) are ignored.
    `request_ids`: restrict to these requests (e.g. the successful ones).
    """
    df = tokens.select("request_id", "t", "n_tokens").filter(pl.col("n_tokens") > 0)
    if request_ids is not None:
        df = df.filter(pl.col("request_id").is_in(request_ids.implode()))
    gaps = (
        df.sort("request_id", "t")
        .with_columns(gap=pl.col("t").diff().over("request_id"))
        .filter(pl.col("gap").is_not_null())
    )
    return gaps.select(
        (pl.col("gap") / pl.col("n_tokens"))
        .repeat_by(pl.col("n_tokens").cast(pl.UInt32))
        .explode()
        .alias("itl")
    ).to_series()


def request_counts(requests: pl.DataFrame) -> dict[str, int]:
    """num_requests, num_ok, num_failed, and the stopped ones: in flight at the stop / never sent."""
    ok = requests["ok"].fill_null(False)
    stopped = requests["stopped"].fill_null(False) & ~ok if "stopped" in requests.columns else ok & False
    sent = requests["t_send"].is_not_null()
    return {
        "num_requests": requests.height,
        "num_ok": int(ok.sum()),
        "num_failed": int((~ok & ~stopped).sum()),
        "num_stopped": int((stopped & sent).sum()),
        "num_not_sent": int((stopped & ~sent).sum()),
    }


def request_latencies(requests: pl.DataFrame) -> pl.DataFrame:
    """Per successful request: ttft, e2e and tpot = (t_end - t_first_token) / (output_tokens - 1)."""
    ok = requests.filter(pl.col("ok").fill_null(False))
    return ok.select(
        "request_id",
        ttft=pl.col("t_first_token") - pl.col("t_send"),
        e2e=pl.col("t_end") - pl.col("t_send"),
        tpot=pl.when(pl.col("output_tokens") > 1)
        .then((pl.col("t_end") - pl.col("t_first_token")) / (pl.col("output_tokens") - 1))
        .otherwise(None),
    )


def latency_summary(requests: pl.DataFrame, tokens: pl.DataFrame) -> dict[str, float | int | None]:
    """All latency figures of a run (seconds), over its successful requests."""
    per_request = request_latencies(requests)
    itl = inter_token_latencies(tokens, per_request["request_id"])
    out: dict[str, float | int | None] = {}
    out.update(distribution(per_request["ttft"], "ttft"))
    out.update(distribution(itl, "itl"))
    out.update(distribution(per_request["tpot"], "tpot"))
    out.update(distribution(per_request["e2e"], "e2e"))
    return out
