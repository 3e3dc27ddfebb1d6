"""Where the joules go in the pipeline: rule `attribute`, the summary's attribution columns, the figures.

The slow test measures a tiny random-weight Llama served by `transformers serve` on CPU, with the
test-only fake GPU as the energy sensor, through `snakemake` (tests/test_pipeline_measure_e2e.py's
campaign): batch 2 without an idle baseline, then batch 4 with one, and a model whose engine crashes.
The fast ones plan a campaign with a diffusion model (no attribution planned for it) and attribute a
diffusion run measured with the xDiT worker imitation (tests/test_measure_diffusion_session.py).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml
from jouleflow.attribution_record import REQUEST_ENERGY_PARQUET, AttributionRecord
from jouleflow.cli import main
from jouleflow.plots.timeline import prefill_bursts
from pipeline_helpers import BASE_SWEEP, copy_workflow, plan, points_of
from test_measure_diffusion_session import jouleflow as jouleflow_diffusion
from test_measure_diffusion_session import measure as measure_diffusion

PIXART_SWEEP = {
    "name": "pixart",
    "source": "measure",
    "models": ["org/pixart"],
    "tasks": ["text-to-image"],
    "gpus": ["H100"],
    "parallelism": ["uly1-ring1"],
    "batch_sizes": [4],
}
DIFFUSION = {
    "models": {"org/pixart": {"modality": "diffusion", "pipeline": "pixart-sigma", "memory_gb": 12}},
    "tasks": {"text-to-image": {"modality": "diffusion", "generation": {"steps": 20, "num_batches": 4}}},
    "sweeps": [BASE_SWEEP, PIXART_SWEEP],
}
REFERENCE = Path(__file__).parents[1] / "resources/reference/runs/lm-arena-chat/"
REFERENCE = REFERENCE / "meta-llama--Llama-3.1-8B-Instruct/H100/tp1"
LLAMA_POINTS = {f"lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/H100/tp1/{b}" for b in (64, 128, 256)}


def test_attribution_is_planned_for_llm_points_only(tmp_path):
    jobs = plan(copy_workflow(tmp_path / "wf"), DIFFUSION)
    assert points_of(jobs, ["attribute"]) == LLAMA_POINTS
    assert points_of(jobs, ["plot_request_energy"]) == LLAMA_POINTS
    assert points_of(jobs, ["energy"]) == LLAMA_POINTS | {"text-to-image/org--pixart/H100/uly1-ring1/4"}
    groups = {w["model"] for rule, w in jobs if rule == "plot_energy_split"}
    assert groups == {"meta-llama--Llama-3.1-8B-Instruct"}


def test_a_diffusion_run_is_not_attributed_and_says_why(tmp_path):
    out = tmp_path / "runs" / "pixart"
    done = measure_diffusion(tmp_path, out, "-b", "1", "--num-batches", "2", "--no-energy")
    assert done.returncode == 0, done.stderr
    assert jouleflow_diffusion(tmp_path, "energy", str(out)).returncode == 0
    attribution = tmp_path / "attribution.json"
    refused = jouleflow_diffusion(tmp_path, "attribute", str(out), "-o", str(attribution))
    assert refused.returncode == 2 and "needs an LLM run" in refused.stderr and not attribution.exists()
    argv = ["attribute", str(out), "-o", str(attribution), "--requests", str(tmp_path / "r.parquet")]
    done = jouleflow_diffusion(tmp_path, *argv, "--allow-empty")
    assert done.returncode == 0, done.stderr
    record = AttributionRecord.read(attribution)
    assert record.not_attributed == "diffusion run: the attribution is for LLM runs"
    assert record.energy_j is None and record.summary_columns()["static_share_note"] == record.not_attributed
    assert pl.read_parquet(tmp_path / "r.parquet").height == 0
    # the summary row of a diffusion run: null attribution columns with the reason
    summary = tmp_path / "summary.parquet"
    assert jouleflow_diffusion(tmp_path, "summarize", str(out), "-o", str(summary)).returncode == 0
    row = pl.read_parquet(summary).row(0, named=True)
    assert row["modality"] == "diffusion" and row["diagnosis"] is None and row["static_share"] is None
    assert row["static_share_note"] == row["token_cost_note"] == record.not_attributed


def test_bundled_runs_summary_columns_and_figures(tmp_path):
    """The bundled runs (no idle baseline, no prompt counter): the columns say why static is null."""
    for b in (64, 256):
        out = tmp_path / "energy" / str(b)
        assert main(["energy", str(REFERENCE / str(b)), "-o", str(out / "summary.json")]) == 0
        argv = ["attribute", str(REFERENCE / str(b)), "--summary", str(out / "summary.json")]
        argv += ["-o", str(out / "attribution.json"), "--requests", str(out / REQUEST_ENERGY_PARQUET)]
        assert main([*argv, "--allow-empty"]) == 0
    jobs = tmp_path / "jobs.tsv"
    jobs.write_text(
        "run_dir\tenergy_json\n"
        + "".join(
            f"{REFERENCE / str(b)}\t{tmp_path / 'energy' / str(b) / 'summary.json'}\n" for b in (64, 256)
        )
    )
    summary = tmp_path / "summary.parquet"
    assert main(["summarize", "--jobs", str(jobs), "-o", str(summary)]) == 0
    rows = pl.read_parquet(summary).sort("batch_size").to_dicts()
    for row, b in zip(rows, (64, 256), strict=True):
        record = AttributionRecord.read(tmp_path / "energy" / str(b) / "attribution.json")
        assert row["static_share"] is None
        assert row["static_share_note"] == "run.json has no idle_baseline (measured before it was recorded)"
        if record.requests["fit_used"] is None:  # B = 256: no fit resolved a and b, nor s beside them
            assert row["split_prefill_share"] is None and row["split_decode_share"] is None
            assert row["split_static_share"] == 0.0 and row["j_per_decode_token"] is None
            shares = record.requests["dynamic_j"] / record.energy_j
        else:
            shares = row["split_static_share"] + row["split_prefill_share"] + row["split_decode_share"]
        assert shares == pytest.approx(record.requests["attributed_j"] / record.energy_j, rel=1e-9)
        assert row["diagnosis"] == record.diagnosis["primary"] == "unclassified"
        assert (row["j_per_decode_token"] is None) == (row["token_cost_note"] is not None)
    figures = []
    for _ in range(2):  # byte-identical on rerun
        split = tmp_path / "split.png"
        model = "meta-llama/Llama-3.1-8B-Instruct"
        assert main(["plot", "energy-split", "--summary", str(summary), "--task", "lm-arena-chat",
                     "--model", model, "-o", str(split)]) == 0  # fmt: skip
        per_request = tmp_path / "requests.png"
        energy = tmp_path / "energy" / "64" / REQUEST_ENERGY_PARQUET
        assert main(["plot", "request-energy", str(REFERENCE / "64"), "--requests", str(energy),
                     "-o", str(per_request)]) == 0  # fmt: skip
        figures.append([p.read_bytes() for p in (split, split.with_suffix(".svg"), per_request)])
    assert figures[0] == figures[1]


def test_prefill_bursts_are_the_spans_where_the_prompt_counter_grew():
    t = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    counter = [0.0, 100.0, 250.0, 250.0, None, 250.0, 300.0]
    assert prefill_bursts(t, counter) == [(0.0, 1.0), (2.5, 3.0)]
    assert prefill_bursts(t, [None] * len(t)) == []  # a trace without the counter (older runs)


@pytest.mark.slow
def test_snakemake_attributes_measured_runs(tmp_path_factory):
    from test_e2e_cpu import _have, _require, make_tiny_llama
    from test_pipeline_measure_e2e import Campaign

    _require(
        _have("torch") and _have("transformers") and _have("fastapi") and _have("uvicorn"),
        "torch/transformers[serving] not installed (pip install torch==2.13.0 'transformers[serving]')",
    )
    root = tmp_path_factory.mktemp("attributed-campaign")
    crash_dir = root / "crash"
    (crash_dir / "transformers").mkdir(parents=True)
    (crash_dir / "transformers" / "__init__.py").write_text("raise SystemExit('engine crash (injected)')\n")
    c = Campaign(copy_workflow(root / "wf"), make_tiny_llama(root / "tiny-llama"), crash_dir)

    def configure(batches, idle_baseline_s):
        # idle_baseline_s is no measured key: changing it re-measures no finished run
        path = c.write_config(tiny_batches=batches, with_crashy=True)
        config = yaml.safe_load(path.read_text())
        config["measurement"]["idle_baseline_s"] = idle_baseline_s
        config["sweeps"][1]["batch_sizes"] = [2]
        path.write_text(yaml.safe_dump(config))

    configure([2], 0)  # batch 2 without an idle baseline
    c.snakemake()
    configure([2, 4], 1)  # batch 4 with one; batch 2 is kept as measured
    c.snakemake()
    results = c.workdir / "results"
    group = "cpu-chat/test--tiny-llama/H100/tp1"
    records = {}
    for b in (2, 4):
        energy_dir = results / "energy" / group / str(b)
        record = records[b] = AttributionRecord.read(energy_dir / "attribution.json")
        assert record.not_attributed is None and record.energy_j > 0
        per_request = pl.read_parquet(energy_dir / REQUEST_ENERGY_PARQUET)
        sent = pl.read_parquet(results / "runs" / group / str(b) / "requests.parquet")
        # every request of the run, partial ones included
        assert sorted(per_request["request_id"].to_list()) == sorted(sent["request_id"].to_list())
        total = per_request["energy_j"].sum() + record.requests["unattributed_j"]
        assert total == pytest.approx(record.energy_j, rel=1e-9)
        assert not (
            results / "runs" / group / str(b) / "attribution.json"
        ).exists()  # the run stays as measured
    assert "idle_baseline" in records[2].missing and "idle_baseline" not in records[4].missing
    crashed = AttributionRecord.read(results / "energy" / "cpu-chat/test--crashy/H100/tp1/2/attribution.json")
    assert crashed.not_attributed.startswith("run failed:")

    rows = {
        (r["model"], r["batch_size"]): r
        for r in pl.read_parquet(results / "summary/summary.parquet").to_dicts()
    }
    no_base, base = rows[("test/tiny-llama", 2)], rows[("test/tiny-llama", 4)]
    assert no_base["static_share"] is None and "idle_baseline" in no_base["static_share_note"]
    assert base["static_share"] == pytest.approx(records[4].static_dynamic["static_share"])
    assert base["static_share"] > 0 and base["static_share_note"] is None
    for row, record in ((no_base, records[2]), (base, records[4])):
        assert row["diagnosis"] == record.diagnosis["primary"]
        costs = record.costs()
        if costs.fit is None:  # not identifiable: null, with the fit's reason
            assert row["j_per_decode_token"] is None and "not identifiable" in row["token_cost_note"]
        else:
            assert row["j_per_decode_token"] == costs.j_per_decode_token and row["j_per_decode_token_se"] > 0
    failed = rows[("test/crashy", 2)]
    assert failed["diagnosis"] is None and failed["static_share_note"].startswith("run failed:")

    figures = results / "figures"
    made = [
        figures / "energy-split" / "cpu-chat" / "test--tiny-llama.png",
        *(figures / "request-energy" / group / f"{b}.png" for b in (2, 4)),
        *(figures / "timeline" / group / f"{b}.png" for b in (2, 4)),
        figures / "request-energy" / "cpu-chat/test--crashy/H100/tp1/2.png",  # says why it is empty
    ]
    for path in made:
        assert path.stat().st_size > 0 and path.with_suffix(".svg").stat().st_size > 0, path
