"""Trace checks before accounting (jouleflow.analysis.trace_checks), on corrupted copies of bundled real runs.

Each case copies a bundled run directory, corrupts one Parquet file and analyzes it: the result is
an error naming the file, a blocking flag, or (where dropping rows gives the exact answer) a
repair whose figures equal the clean copy's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from jouleflow.analysis import trace_checks
from jouleflow.analysis.energy import analyze_run, load_run
from jouleflow.traces import TraceError

REPO = Path(__file__).resolve().parents[1]
LLM_RUNS = sorted(p.parent for p in (REPO / "resources" / "reference" / "runs").rglob("run.json"))
DIFFUSION_RUNS = sorted(
    p.parent for p in (REPO / "resources" / "diffusion-verification" / "runs").rglob("run.json")
)
# Llama-3.1-8B on the H100, B = 64: 1,024 requests, 400k chunks, 1 GPU
LLM_RUN = REPO / "resources/reference/runs/lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/H100/tp1/64"
DIFFUSION_RUN = DIFFUSION_RUNS[0]  # 2 GPUs, 6 batches
# Bundled as measured and invalid (docs/reference.md): the request pool ran out before J/token converged.
NOT_CONVERGED = {REPO / "resources/reference/runs/image-chat/Qwen--Qwen3-VL-8B-Instruct/H200/tp1/256"}
FIGURES = ("energy_per_token_j", "energy_per_request_j", "steady_energy_j", "steady_tokens")


@pytest.fixture(scope="module")
def clean() -> dict:
    return analyze_run(LLM_RUN)


def corrupted(tmp_path: Path, name: str, edit: Callable[[pl.DataFrame], pl.DataFrame], src=LLM_RUN) -> Path:
    """A copy of `src` whose `name` went through `edit`."""
    run = tmp_path / "run"
    shutil.copytree(src, run)
    path = run / name
    edit(pl.read_parquet(path)).write_parquet(path)
    return run


def nan_at(column: str, rows: list[int], value: float = float("nan")):
    def edit(df: pl.DataFrame) -> pl.DataFrame:
        hit = pl.int_range(pl.len()).is_in(rows)
        return df.with_columns(pl.when(hit).then(value).otherwise(pl.col(column)).alias(column))

    return edit


def edge_rows(power: pl.DataFrame, edge: float) -> tuple[int, int]:
    """Row numbers of the two samples around `edge` (the counter at the edge is interpolated from them)."""
    t = power["t"].to_list()
    after = next(i for i, ti in enumerate(t) if ti > edge)
    return after - 1, after


def assert_same_figures(s: dict, clean: dict) -> None:
    for key in FIGURES:
        assert s[key] == pytest.approx(clean[key], rel=1e-12, abs=0), key


def details(s: dict, flag: str) -> str:
    assert flag in s["flags"], s["flag_details"]
    return s["flag_details"][flag]


# --- clean runs: the checks find nothing and change nothing -----------------------------------------


@pytest.mark.parametrize("run_dir", LLM_RUNS + DIFFUSION_RUNS, ids=lambda p: "/".join(p.parts[-3:]))
def test_bundled_runs_pass_every_check_untouched(run_dir, monkeypatch):
    run = load_run(run_dir)
    checked = trace_checks.check_run(run)
    assert checked.flags.details == {}
    for attr in ("power", "requests", "tokens", "server", "batches"):
        assert getattr(checked.run, attr) is getattr(run, attr)  # the very same frames
    with_checks = analyze_run(run_dir)
    monkeypatch.setattr(trace_checks, "check_run", lambda r: trace_checks.CheckedRun(r, checked.flags))
    assert with_checks == analyze_run(run_dir)
    if run_dir in NOT_CONVERGED:  # invalid for its load, not for its traces
        assert with_checks["flags"] == ["not-converged"], with_checks["flag_details"]
        assert "request pool exhausted" in with_checks["flag_details"]["not-converged"]
    else:
        assert with_checks["valid"], with_checks["flag_details"]


# --- power.parquet ------------------------------------------------------------------------------------


def test_nan_counter_samples_inside_the_window_are_dropped_with_the_exact_figures(tmp_path, clean):
    power = pl.read_parquet(LLM_RUN / "power.parquet")
    keep = {*edge_rows(power, clean["steady_start"]), *edge_rows(power, clean["steady_end"])}
    rows = [i for i in range(0, power.height, 7) if i not in keep]  # unrepaired: J/token -29%, "valid"
    run = corrupted(tmp_path, "power.parquet", nan_at("energy_j", rows))
    s = analyze_run(run)
    assert s["valid"], s["flag_details"]
    assert f"dropped {len(rows)} sample(s) with a NaN/inf energy_j" in details(s, "trace-repaired")
    assert_same_figures(s, clean)


def test_nan_and_inf_instant_power_are_nulled_and_the_counter_kept(tmp_path, clean):
    # Every 5th reading, window edges included: the counter figures cannot move, the cross-check goes.
    rows = list(range(0, 2183, 5))
    assert pl.read_parquet(LLM_RUN / "power.parquet").height == 2183
    run = corrupted(tmp_path, "power.parquet", nan_at("power_w", rows, float("inf")))
    s = analyze_run(run)
    assert s["valid"], s["flag_details"]
    assert f"{len(rows)} NaN/inf power_w reading(s) set to null" in details(s, "trace-repaired")
    assert_same_figures(s, clean)
    assert s["power_integral_j"] is None and clean["power_integral_j"] is not None


@pytest.mark.parametrize("edge", ["steady_start", "steady_end"])
@pytest.mark.parametrize("side", [0, 1])
def test_nan_sample_next_to_a_window_edge_blocks(tmp_path, clean, edge, side):
    # Interpolating the counter over the wider gap would move the figure (by ~1e-5 here): no repair.
    power = pl.read_parquet(LLM_RUN / "power.parquet")
    row = edge_rows(power, clean[edge])[side]
    s = analyze_run(corrupted(tmp_path, "power.parquet", nan_at("energy_j", [row])))
    assert not s["valid"]
    assert "dropped for a NaN/inf counter lay next to window edge" in details(s, "power-trace-gap")


def test_nan_sample_time_stops_the_analysis(tmp_path):
    run = corrupted(tmp_path, "power.parquet", nan_at("t", [100]))
    with pytest.raises(
        TraceError, match=r"power\.parquet: 1 row\(s\) with NaN/inf \{'t': 1\}, e\.g\. rows 100"
    ):
        analyze_run(run)


def test_identical_duplicate_power_rows_are_dropped(tmp_path, clean):
    run = corrupted(tmp_path, "power.parquet", lambda df: pl.concat([df, df.head(500)]).sort("t"))
    s = analyze_run(run)
    assert s["valid"] and "dropped 500 identical duplicate row(s)" in details(s, "trace-repaired")
    assert str(tmp_path) not in json.dumps(s)
    assert_same_figures(s, clean)
    assert s["power_integral_j"] == pytest.approx(clean["power_integral_j"], rel=1e-12)


def test_differing_rows_at_one_power_sample_time_stop_the_analysis(tmp_path):
    def edit(df):
        twin = df.slice(200, 1).with_columns(pl.col("energy_j") + 50.0)
        return pl.concat([df, twin])

    with pytest.raises(TraceError, match=r"power\.parquet: 1 gpu/t value\(s\) appear on differing rows"):
        analyze_run(corrupted(tmp_path, "power.parquet", edit))


def test_power_rows_of_a_gpu_not_in_run_json_block(tmp_path, clean):
    # A second copy of the trace labelled GPU 1: summed in, it would double the energy.
    run = corrupted(
        tmp_path,
        "power.parquet",
        lambda df: pl.concat([df, df.with_columns(pl.lit(1, pl.Int32).alias("gpu"))]),
    )
    s = analyze_run(run)
    assert not s["valid"]
    detail = details(s, "trace-inconsistent")
    assert "row(s) of GPU(s) [1] that run.json provenance.gpus does not list (job GPUs [0])" in detail
    assert s["energy_per_gpu_j"].keys() == {"0"}  # the energy stays that of the listed GPU
    assert_same_figures(s, clean)


# --- tokens.parquet against requests.parquet --------------------------------------------------------


def test_duplicated_token_rows_block(tmp_path, clean):
    s = analyze_run(corrupted(tmp_path, "tokens.parquet", lambda df: pl.concat([df, df])))
    assert not s["valid"]
    assert s["energy_per_token_j"] == pytest.approx(clean["energy_per_token_j"] / 2)  # what it hides
    detail = details(s, "trace-inconsistent")
    assert "1024 of 1024 ok request(s) have output_tokens in" in detail
    assert "tokens.parquet" in detail and "requests.parquet" in detail
    assert s["flags"][0] == "trace-inconsistent"  # listed first: it explains what follows
    assert str(tmp_path) not in json.dumps(s)  # summary.json stays independent of the run's path


def test_duplicated_chunks_of_a_few_requests_block(tmp_path):
    def edit(df):
        return pl.concat([df, df.filter(pl.col("request_id").is_in([3, 500, 900]))])

    s = analyze_run(corrupted(tmp_path, "tokens.parquet", edit))
    assert not s["valid"] and "3 of 1024 ok request(s)" in details(s, "trace-inconsistent")


def test_output_tokens_disagreeing_with_the_chunks_block(tmp_path, clean):
    run = corrupted(tmp_path, "requests.parquet", lambda df: df.with_columns(pl.col("output_tokens") * 2))
    s = analyze_run(run)
    assert not s["valid"]
    assert s["energy_per_request_j"] == pytest.approx(2 * clean["energy_per_request_j"])
    assert "request 0: 1206 vs 603" in details(s, "trace-inconsistent")


def test_chunks_outside_their_request_block(tmp_path, clean):
    # Chunks of the requests that ended before the window moved into it: more window tokens.
    req = pl.read_parquet(LLM_RUN / "requests.parquet")
    early = req.filter(pl.col("t_end") < clean["steady_start"])["request_id"]

    def edit(df):
        moved = pl.col("request_id").is_in(early.implode())
        return df.with_columns(pl.when(moved).then(pl.col("t") + 20.0).otherwise(pl.col("t")).alias("t"))

    s = analyze_run(corrupted(tmp_path, "tokens.parquet", edit))
    assert not s["valid"] and s["steady_tokens"] > clean["steady_tokens"]
    detail = details(s, "trace-inconsistent")
    assert f"of {early.len()} request(s) lie outside their request's [t_send, t_end]" in detail
    assert "s after t_end" in detail


def test_clock_jitter_within_1_ms_is_tolerated_and_2_ms_is_not(tmp_path):
    req = pl.read_parquet(LLM_RUN / "requests.parquet").row(0, named=True)
    last_chunk = pl.col("t") == pl.col("t").filter(pl.col("request_id") == 0).max()

    def late_by(seconds):
        def edit(df):
            shift = last_chunk & (pl.col("request_id") == 0)
            return df.with_columns(
                pl.when(shift).then(req["t_end"] + seconds).otherwise(pl.col("t")).alias("t")
            )

        return edit

    assert analyze_run(corrupted(tmp_path / "a", "tokens.parquet", late_by(0.0009)))["valid"]
    s = analyze_run(corrupted(tmp_path / "b", "tokens.parquet", late_by(0.002)))
    assert "request 0: a chunk 0.002 s after t_end" in details(s, "trace-inconsistent")


def test_chunks_of_unknown_requests_block(tmp_path):
    s = analyze_run(
        corrupted(tmp_path, "tokens.parquet", lambda df: df.with_columns(pl.col("request_id") + 5))
    )
    assert not s["valid"]
    assert "chunk(s) of 5 request id(s) absent from" in details(s, "trace-inconsistent")


def test_nan_chunk_time_stops_the_analysis(tmp_path):
    with pytest.raises(TraceError, match=r"tokens\.parquet: 1 row\(s\) with NaN/inf \{'t': 1\}"):
        analyze_run(corrupted(tmp_path, "tokens.parquet", nan_at("t", [12345], float("-inf"))))


# --- requests.parquet and server.parquet ------------------------------------------------------------


def test_identical_duplicate_request_rows_are_dropped(tmp_path, clean):
    s = analyze_run(corrupted(tmp_path, "requests.parquet", lambda df: pl.concat([df, df.slice(100, 200)])))
    assert s["valid"] and "requests.parquet: dropped 200 identical duplicate row(s)" in details(
        s, "trace-repaired"
    )
    assert_same_figures(s, clean)
    assert s["num_requests"] == 1024 and s["window_client"] == clean["window_client"]
    assert s["median_ttft_s"] == clean["median_ttft_s"]


def test_one_request_id_on_differing_rows_stops_the_analysis(tmp_path):
    def edit(df):
        return pl.concat([df, df.slice(7, 1).with_columns(pl.col("t_end") + 1.0)])

    with pytest.raises(
        TraceError,
        match=r"requests\.parquet: 1 request_id value\(s\) appear on differing rows, e\.g\. \(7,\)",
    ):
        analyze_run(corrupted(tmp_path, "requests.parquet", edit))


@pytest.mark.parametrize(("name", "column"), [("requests.parquet", "t_end"), ("server.parquet", "running")])
def test_nan_times_and_gauges_stop_the_analysis(tmp_path, name, column):
    with pytest.raises(TraceError, match=rf"{name}: 2 row\(s\) with NaN/inf \{{'{column}': 2\}}"):
        analyze_run(corrupted(tmp_path, name, nan_at(column, [5, 6])))


# --- diffusion: every batch edge is a window edge ----------------------------------------------------


def test_diffusion_nan_sample_next_to_a_batch_edge_blocks_and_elsewhere_repairs(tmp_path):
    clean = analyze_run(DIFFUSION_RUN)
    power = pl.read_parquet(DIFFUSION_RUN / "power.parquet").with_row_index()
    batches = pl.read_parquet(DIFFUSION_RUN / "batches.parquet")
    edge = batches["t_start"][2]
    gpu0 = power.filter(pl.col("gpu") == 0)
    before = gpu0.filter(pl.col("t") <= edge)["index"][-1]
    s = analyze_run(corrupted(tmp_path / "a", "power.parquet", nan_at("energy_j", [before]), DIFFUSION_RUN))
    assert not s["valid"] and "GPU 0: a sample dropped for a NaN/inf counter" in details(s, "power-trace-gap")

    edges = batches["t_start"].to_list() + batches["t_end"].to_list()
    far = gpu0.filter(pl.min_horizontal([(pl.col("t") - e).abs() for e in edges]) > 0.2)["index"].to_list()
    s = analyze_run(corrupted(tmp_path / "b", "power.parquet", nan_at("energy_j", far[::3]), DIFFUSION_RUN))
    assert s["valid"], s["flag_details"]
    assert s["energy_per_image_j"] == pytest.approx(clean["energy_per_image_j"], rel=1e-12)


def test_diffusion_power_of_an_unlisted_gpu_blocks(tmp_path):
    def edit(df):
        return pl.concat([df, df.filter(pl.col("gpu") == 0).with_columns(pl.lit(2, pl.Int32).alias("gpu"))])

    s = analyze_run(corrupted(tmp_path, "power.parquet", edit, DIFFUSION_RUN))
    assert not s["valid"] and "GPU(s) [2] that run.json" in details(s, "trace-inconsistent")


# --- the CLI ------------------------------------------------------------------------------------------


def jouleflow(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "jouleflow", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_reports_the_flag_and_the_error(tmp_path):
    run = corrupted(tmp_path / "a", "tokens.parquet", lambda df: pl.concat([df, df]))
    done = jouleflow("energy", str(run))
    assert done.returncode == 0, done.stderr
    assert "INVALID trace-inconsistent" in done.stdout
    assert json.loads((run / "summary.json").read_text())["valid"] is False

    run = corrupted(tmp_path / "b", "requests.parquet", nan_at("t_send", [0]))
    done = jouleflow("energy", str(run))
    assert done.returncode == 2 and "requests.parquet: 1 row(s) with NaN/inf" in done.stderr
    assert not (run / "summary.json").exists()
