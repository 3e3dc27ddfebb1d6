"""Figures: files written (PNG + SVG), byte-identical SVG on rerun, labels present, clear errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from jouleflow import traces
from jouleflow.analysis.frontier import FrontierError
from jouleflow.importers.mlenergy import import_mlenergy
from jouleflow.plots.frontier_plot import plot_frontier
from jouleflow.plots.sweep import plot_sweep
from jouleflow.plots.task_energy import plot_task_energy, task_energy_table
from jouleflow.plots.timeline import TimelineError, plot_timeline

REPO = Path(__file__).resolve().parents[1]
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
SD21 = "stabilityai/stable-diffusion-2-1"


@pytest.fixture(scope="module")
def v3() -> pl.DataFrame:
    return pl.from_arrow(import_mlenergy(REPO / "resources" / "mlenergy-v3"))


@pytest.fixture(scope="module")
def v2() -> pl.DataFrame:
    return pl.from_arrow(import_mlenergy(REPO / "tests" / "data" / "mlenergy-v2"))


def svg_texts(path: Path) -> list[str]:
    """Text drawn as paths is still recorded by matplotlib as an SVG comment per string."""
    return re.findall(r"<!-- (.*?) -->", path.read_text())


def assert_written(paths: list[Path]) -> tuple[Path, Path]:
    png, svg = paths
    assert png.suffix == ".png" and svg.suffix == ".svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert svg.read_text().lstrip().startswith("<?xml") and svg.stat().st_size > 10_000
    return png, svg


def test_sweep_writes_png_and_svg_deterministically(tmp_path: Path, v3: pl.DataFrame) -> None:
    _, svg1 = assert_written(plot_sweep(v3, "lm-arena-chat", LLAMA, tmp_path / "a" / "sweep.png"))
    _, svg2 = assert_written(plot_sweep(v3, "lm-arena-chat", LLAMA, tmp_path / "b" / "sweep.png"))
    assert svg1.read_bytes() == svg2.read_bytes()
    texts = svg_texts(svg1)
    for label in (
        "Energy per token (J)",
        "Throughput (tokens/s)",
        "Median ITL (ms)",
        "Mean power, all GPUs (W)",
    ):
        assert label in texts
    assert "B200 ×1 (tp1)" in texts and "H100 ×1 (tp1)" in texts


def test_sweep_diffusion_and_v2_labels(tmp_path: Path, v2: pl.DataFrame) -> None:
    _, svg = assert_written(plot_sweep(v2, "text-to-image", SD21, tmp_path / "sd"))
    assert "Energy per image (J)" in svg_texts(svg) and "Batch latency (s)" in svg_texts(svg)
    _, svg = assert_written(
        plot_sweep(v2, "chat", "meta-llama/Meta-Llama-3.1-8B-Instruct", tmp_path / "chat")
    )
    assert "Mean TPOT (ms)" in svg_texts(svg)  # v2 publishes an average, never called a median


def test_sweep_missing_column_is_named(tmp_path: Path, v3: pl.DataFrame) -> None:
    with pytest.raises(FrontierError, match="mean_power_w"):
        plot_sweep(v3.drop("mean_power_w"), "lm-arena-chat", LLAMA, tmp_path / "x.png")
    with pytest.raises(FrontierError, match="unknown model"):
        plot_sweep(v3, "lm-arena-chat", "nope", tmp_path / "x.png")


def test_frontier_plot_marks_recommendation(tmp_path: Path, v2: pl.DataFrame) -> None:
    _, svg = assert_written(
        plot_frontier(v2, "text-to-image", SD21, tmp_path / "f.svg", latency_target_s=5.0)
    )
    texts = svg_texts(svg)
    assert "target 5 s: recommended H100 ×1, batch 8, −21% energy vs minimum latency" in texts
    assert "Batch latency (s)" in texts and "Energy per image (J)" in texts


def test_frontier_plot_unreachable_target_is_drawn_not_raised(tmp_path: Path, v2: pl.DataFrame) -> None:
    _, svg = assert_written(plot_frontier(v2, "text-to-image", SD21, tmp_path / "f", latency_target_s=0.1))
    assert any("unreachable" in t for t in svg_texts(svg))


def test_frontier_plot_missing_column_is_named(tmp_path: Path, v2: pl.DataFrame) -> None:
    with pytest.raises(FrontierError, match="energy_per_response_j"):
        plot_frontier(v2.drop("energy_per_response_j"), "text-to-image", SD21, tmp_path / "f")


def test_task_energy_estimate_by_hand(v2: pl.DataFrame) -> None:
    table = task_energy_table(v2, ["text-to-image"], "H100")
    row = table.filter(pl.col("model") == SD21).row(0, named=True)
    # Minimum energy on H100: batch 64, 26.282 s per batch, 279.70 J/image (published file).
    assert row["batch_size"] == 64
    assert row["tdp_estimate_j"] == pytest.approx(700 * 1 * row["batch_latency_s"] / 64)
    assert row["tdp_overestimation"] == pytest.approx(700 * 26.282402443885804 / 64 / 279.7018828125001)


def test_task_energy_llm_estimate_by_hand(v3: pl.DataFrame) -> None:
    row = task_energy_table(v3, ["lm-arena-chat"], "H100").filter(pl.col("model") == LLAMA).row(0, named=True)
    expected = 700 * row["num_gpus"] / row["tokens_per_s"] * row["mean_output_tokens"]
    assert row["tdp_estimate_j"] == pytest.approx(expected)


def test_task_energy_plot(tmp_path: Path, v3: pl.DataFrame) -> None:
    _, svg = assert_written(
        plot_task_energy(v3, tmp_path / "te", ["sourcegraph-fim", "text-to-image"], "B200")
    )
    texts = svg_texts(svg)
    assert "TDP-based estimate" in texts and "sourcegraph-fim (J per response)" in texts
    assert "text-to-image (J per image)" in texts
    assert any(re.fullmatch(r"\d+(\.\d+)? k?J · estimate ×\d+\.\d", t) for t in texts)
    with pytest.raises(ValueError, match="gpu_tdp_w"):
        plot_task_energy(v3.drop("gpu_tdp_w"), tmp_path / "x")
    with pytest.raises(FrontierError, match="unknown GPU 'Z80'"):
        plot_task_energy(v3, tmp_path / "x", gpu="Z80")


def make_run_dir(root: Path, load_format: str = "dummy") -> Path:
    """A small run directory: 2 GPUs at 10 Hz for 60 s, server ramp 0→8→0, steady 10..50 s."""
    run = root / "run"
    t0 = 1_700_000_000.0
    power = [
        {
            "t": t0 + i / 10,
            "gpu": g,
            "power_w": 100 + 5 * g + (300 if 100 <= i < 500 else 0),
            "energy_j": i * 10.0,
            "temp_c": 50.0,
        }
        for i in range(600)
        for g in (0, 1)
    ]
    server = [
        {
            "t": t0 + s,
            "running": float(min(8, s, 60 - s)),
            "waiting": 0.0,
            "kv_cache_usage": 0.5,
            "preemptions": 0.0,
            "generation_tokens": 0.0,
        }
        for s in range(61)
    ]
    traces.write_table(traces.table_from_rows(power, traces.POWER), run / "power.parquet")
    traces.write_table(traces.table_from_rows(server, traces.SERVER), run / "server.parquet")
    traces.write_json({"steady_start": t0 + 10, "steady_end": t0 + 50}, run / "summary.json")
    config = {
        "task": "lm-arena-chat",
        "model": LLAMA,
        "gpu": "H100",
        "num_gpus": 2,
        "batch_size": 8,
        "parallelism": "tp2",
        "load_format": load_format,
    }
    traces.write_json(
        {"schema_version": 1, "status": "ok", "config": config, "timing": {"t0": t0}}, run / "run.json"
    )
    return run


def test_timeline(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    _, svg1 = assert_written(plot_timeline(run, tmp_path / "a" / "timeline"))
    _, svg2 = assert_written(plot_timeline(run, tmp_path / "b" / "timeline"))
    assert svg1.read_bytes() == svg2.read_bytes()
    texts = svg_texts(svg1)
    for label in (
        "GPU 0",
        "GPU 1",
        "steady window",
        "running requests",
        "Running requests",
        "Power per GPU (W)",
        "dummy weights",
    ):
        assert label in texts


def test_timeline_reads_the_window_from_a_given_energy_summary(tmp_path: Path) -> None:
    """The pipeline keeps summary.json outside the run directory: --energy points at it."""
    run = make_run_dir(tmp_path)
    moved = tmp_path / "energy" / "summary.json"
    moved.parent.mkdir()
    (run / "summary.json").rename(moved)
    _, bare = assert_written(plot_timeline(run, tmp_path / "bare" / "timeline"))
    assert "steady window" not in svg_texts(bare)
    _, svg = assert_written(plot_timeline(run, tmp_path / "given" / "timeline", moved))
    assert "steady window" in svg_texts(svg)
    with pytest.raises(TimelineError, match="nope.json: energy summary is missing"):
        plot_timeline(run, tmp_path / "x", tmp_path / "nope.json")


def test_timeline_errors_name_file_and_column(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    traces.write_json({"steady_start": 1.0}, run / "summary.json")
    with pytest.raises(TimelineError, match="summary.json: missing key 'steady_end'"):
        plot_timeline(run, tmp_path / "x")
    power = pl.read_parquet(run / "power.parquet").drop("power_w")
    power.write_parquet(run / "power.parquet")
    with pytest.raises(traces.TraceError, match="power.parquet: missing column.*power_w"):
        plot_timeline(run, tmp_path / "x")
    (run / "power.parquet").unlink()
    with pytest.raises(TimelineError, match="power.parquet"):
        plot_timeline(run, tmp_path / "x")


def test_cli_plots_are_byte_identical_across_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    summary = tmp_path / "v2.parquet"
    base = [sys.executable, "-m", "jouleflow"]
    subprocess.run(
        [*base, "import", "mlenergy", str(REPO / "tests/data/mlenergy-v2"), "-o", str(summary)],
        env=env,
        check=True,
    )
    outputs = []
    for name in ("one", "two"):
        cmd = [*base, "plot", "frontier", "--summary", str(summary), "--task", "text-to-image", "--model", SD21,
               "--latency-target", "5s", "-o", str(tmp_path / name / "frontier.png")]  # fmt: skip
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        outputs.append(tmp_path / name / "frontier")
    for suffix in (".svg", ".png"):
        first, second = (p.with_suffix(suffix).read_bytes() for p in outputs)
        assert first and first == second, suffix
    run = make_run_dir(tmp_path)
    subprocess.run([*base, "plot", "timeline", str(run), "-o", str(tmp_path / "tl.svg")], env=env, check=True)
    assert (tmp_path / "tl.png").is_file() and (tmp_path / "tl.svg").is_file()
    bad = subprocess.run([*base, "plot", "sweep", "--summary", str(summary), "--task", "nope", "--model", SD21, "-o", str(tmp_path / "s")],
                         env=env, capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "unknown task 'nope'" in bad.stderr
    missing = tmp_path / "no-such-dir"
    bad = subprocess.run([*base, "plot", "frontier", "--summary", str(summary), "--task", "text-to-image", "--model", SD21,
                          "--published", str(missing), "-o", str(tmp_path / "f")], env=env, capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and f"--published {missing}: no such file or directory" in bad.stderr


def test_cli_allow_empty_draws_a_placeholder_for_a_group_without_runs(
    tmp_path: Path, v2: pl.DataFrame
) -> None:
    """All runs of a group infeasible: the pipeline's figure rules must not fail the campaign."""
    summary = tmp_path / "s.parquet"
    infeasible = v2.filter(pl.col("model") == SD21).with_columns(
        status=pl.lit("infeasible"), valid=pl.lit(False)
    )
    infeasible.write_parquet(summary)
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    for figure in ("sweep", "frontier"):
        cmd = [sys.executable, "-m", "jouleflow", "plot", figure, "--summary", str(summary),
               "--task", "text-to-image", "--model", SD21, "-o", str(tmp_path / figure / "f.png")]  # fmt: skip
        strict = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert strict.returncode == 2
        assert "nothing to plot" in strict.stderr or "no completed runs" in strict.stderr
        assert not (tmp_path / figure / "f.png").exists()
        lenient = subprocess.run([*cmd, "--allow-empty"], env=env, capture_output=True, text=True)
        assert lenient.returncode == 0, lenient.stderr
        texts = " ".join(svg_texts(tmp_path / figure / "f.svg"))
        assert "nothing to plot" in texts and SD21 in texts


def test_task_energy_names_a_precision_the_model_id_does_not(tmp_path: Path, v3: pl.DataFrame) -> None:
    chat = v3.filter((pl.col("task") == "lm-arena-chat") & (pl.col("gpu") == "H100"))
    fp8_ids = sorted(m for m in set(chat["model"].to_list()) if m.lower().endswith("-fp8"))
    assert fp8_ids  # ML.ENERGY's FP8 checkpoints carry their own id, at precision fp8
    # jouleflow's `precisions: [bf16, fp8]` keeps the id: an FP8 run of Llama, cheaper than its BF16 runs.
    llama = chat.filter(pl.col("model") == LLAMA)
    ours = llama.head(1).with_columns(
        precision=pl.lit("fp8"), energy_per_response_j=pl.lit(llama["energy_per_response_j"].min() / 2)
    )
    _, svg = assert_written(
        plot_task_energy(pl.concat([chat, ours]), tmp_path / "te", ["lm-arena-chat"], "H100")
    )
    texts = svg_texts(svg)
    assert f"{LLAMA} FP8" in texts
    assert set(fp8_ids) <= set(texts) and not any(t.lower().endswith("-fp8 fp8") for t in texts)


def test_frontier_plot_overlays_published_points_labelled_as_such(tmp_path: Path, v3: pl.DataFrame) -> None:
    chat = v3.filter((pl.col("task") == "lm-arena-chat") & (pl.col("model") == LLAMA))
    ours, theirs = chat.filter(pl.col("gpu") == "H100"), chat.filter(pl.col("gpu") == "B200")
    assert ours.height and theirs.height
    kwargs = {"latency_targets_s": [0.02], "precision": "bf16"}
    _, alone = assert_written(plot_frontier(ours, "lm-arena-chat", LLAMA, tmp_path / "a", **kwargs))
    _, svg = assert_written(
        plot_frontier(ours, "lm-arena-chat", LLAMA, tmp_path / "b", published=theirs, **kwargs)
    )
    texts, before = svg_texts(svg), svg_texts(alone)
    published = [t for t in texts if t.endswith("· ML.ENERGY v3 (published)")]
    assert published and all(t.startswith("B200 ×") for t in published)
    # The recommendation is the campaign's own: the published points are drawn, not chosen from.
    assert [t for t in texts if t.startswith("target ")] == [t for t in before if t.startswith("target ")]
    # Another precision's group gets none of them.
    _, svg = assert_written(
        plot_frontier(ours, "lm-arena-chat", LLAMA, tmp_path / "c", published=theirs.with_columns(
            precision=pl.lit("fp8")), **kwargs)
    )  # fmt: skip
    assert not any("(published)" in t for t in svg_texts(svg))
