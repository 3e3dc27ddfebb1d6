"""Finished measurements are never overwritten or silently kept against a changed config."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jouleflow.plan.runguard import (
    ORIGIN_JSON,
    StaleRunError,
    copy_reference,
    decide,
    write_skipped_infeasible,
)
from jouleflow.traces import RunDirWriter, read_json

REPO = Path(__file__).resolve().parents[1]
BUNDLED = (
    REPO / "tests/data/reference-fixture/runs/lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/H100/tp1/64"
)

SPEC = {
    "task": "chat",
    "model": "org/small",
    "gpu": "H100",
    "num_gpus": 1,
    "batch_size": 16,
    "precision": "bf16",
    "load_format": "dummy",
    "engine": "vllm",
    "endpoint": "chat",
    "num_requests": 64,
    "max_model_len": 4096,
    "sampling": {"temperature": 0.8},
    "server_args": ["--enforce-eager"],
    "env": {},
    "model_path": "/somewhere/else",
}


def measured_run(path: Path, status: str = "ok", **config_changes) -> Path:
    """A finished run as the measure CLI leaves it (traces omitted: the guard reads run.json only)."""
    writer = RunDirWriter(path)
    writer.write_trace(
        "power.parquet", [{"t": 1.0, "gpu": 0, "power_w": 100.0, "energy_j": 0.0, "temp_c": 40.0}]
    )
    config = {**SPEC, **config_changes, "model_path": "/models/small"}
    return writer.commit(
        {"status": status, "reason": None if status == "ok" else "CUDA out of memory", "config": config}
    )


def snapshot(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run_dir.iterdir())}


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    return subprocess.run([sys.executable, "-m", "jouleflow", *args], capture_output=True, text=True, env=env)


def test_missing_run_is_measured_or_copied(tmp_path):
    assert decide(SPEC, tmp_path / "run", "measure").action == "measure"
    decision = decide(SPEC, tmp_path / "run", "reference", reference_run=BUNDLED)
    assert (decision.action, decision.detail) == ("copy", str(BUNDLED))
    (tmp_path / "empty").mkdir()  # Snakemake may leave an empty directory behind: not a finished run
    assert decide(SPEC, tmp_path / "empty", "measure").action == "measure"


def test_matching_run_is_kept_even_when_only_the_model_path_moved(tmp_path):
    run = measured_run(tmp_path / "run")
    assert decide(SPEC, run, "measure").action == "keep"


@pytest.mark.parametrize(
    "change, key",
    [
        ({"server_args": []}, "server_args"),
        ({"num_requests": 32}, "num_requests"),
        ({"batch_size": 8}, "batch_size"),
    ],
)
def test_changed_config_of_a_finished_run_is_refused_naming_the_key(tmp_path, change, key):
    run = measured_run(tmp_path / "run", **change)
    with pytest.raises(StaleRunError, match=rf"{run}: finished run differs from the config \({key}: run has"):
        decide(SPEC, run, "measure")


def test_source_switch_is_refused(tmp_path):
    measured = measured_run(tmp_path / "measured")
    with pytest.raises(StaleRunError, match="was measured, but the config now gives source 'reference'"):
        decide(SPEC, measured, "reference", reference_run=BUNDLED)
    copied = copy_reference(BUNDLED, tmp_path / "copied")
    with pytest.raises(StaleRunError, match="copied from the bundled reference campaign.*source 'measure'"):
        decide(SPEC, copied, "measure")


def test_reference_copy_is_exact_and_marked(tmp_path):
    dst = copy_reference(BUNDLED, tmp_path / "runs" / "64")
    for src in BUNDLED.iterdir():
        assert (dst / src.name).read_bytes() == src.read_bytes()
    origin = read_json(dst / ORIGIN_JSON)
    assert origin["run_json_sha256"] == hashlib.sha256((BUNDLED / "run.json").read_bytes()).hexdigest()
    assert sorted(p.name for p in dst.iterdir()) == sorted(
        [*(p.name for p in BUNDLED.iterdir()), ORIGIN_JSON]
    )
    assert [p.name for p in dst.parent.iterdir()] == ["64"]  # no temp directory left
    spec = json.loads((BUNDLED / "run.json").read_text())["config"]
    assert decide(spec, dst, "reference", reference_run=BUNDLED).action == "keep"
    with pytest.raises(FileExistsError):
        copy_reference(BUNDLED, dst)


def test_changed_bundle_is_refused(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for src in BUNDLED.iterdir():
        (bundle / src.name).write_bytes(src.read_bytes())
    dst = copy_reference(bundle, tmp_path / "copy")
    meta = json.loads((bundle / "run.json").read_text())
    meta["provenance"]["host"] = "re-recorded"
    (bundle / "run.json").write_text(json.dumps(meta))
    with pytest.raises(StaleRunError, match="changed since it was copied"):
        decide(meta["config"], dst, "reference", reference_run=bundle)


def test_missing_bundle_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no bundled run here"):
        copy_reference(tmp_path / "nope", tmp_path / "dst")
    assert list(tmp_path.iterdir()) == []


def test_larger_batch_after_an_infeasible_one_is_not_attempted(tmp_path):
    smaller = measured_run(tmp_path / "8", status="infeasible", batch_size=8)
    decision = decide(SPEC, tmp_path / "16", "measure", predecessor=smaller)
    assert decision == type(decision)("skip-infeasible", "CUDA out of memory")
    ok = measured_run(tmp_path / "ok8", batch_size=8)
    assert decide(SPEC, tmp_path / "16", "measure", predecessor=ok).action == "measure"
    failed = measured_run(tmp_path / "failed8", status="failed", batch_size=8)
    assert decide(SPEC, tmp_path / "16", "measure", predecessor=failed).action == "measure"
    # the skipped point is itself infeasible, so the one after it is skipped too
    skipped = write_skipped_infeasible(SPEC, tmp_path / "16", smaller, decision.detail)
    meta = read_json(skipped / "run.json")
    assert meta["status"] == "infeasible" and str(smaller) in meta["reason"]
    assert meta["provenance"]["energy_source"] is None and not (skipped / "power.parquet").exists()
    assert decide(SPEC, tmp_path / "32", "measure", predecessor=skipped).action == "skip-infeasible"


def test_cli_measure_keeps_refuses_and_skips_without_touching_runs(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    run = measured_run(tmp_path / "runs" / "16")
    before = snapshot(run)
    kept = cli("campaign", "measure", str(spec), str(run))
    assert kept.returncode == 0 and "kept as is" in kept.stderr
    assert snapshot(run) == before

    spec.write_text(
        json.dumps({**SPEC, "server_args": ["--enforce-eager", "--max-num-batched-tokens", "8192"]})
    )
    refused = cli("campaign", "measure", str(spec), str(run))
    assert refused.returncode == 2
    assert f"{run}: finished run differs from the config (server_args: run has" in refused.stderr
    assert snapshot(run) == before

    smaller = measured_run(tmp_path / "runs" / "8", status="infeasible", batch_size=8)
    larger = tmp_path / "runs" / "32"
    skipped = cli("campaign", "measure", str(spec), str(larger), "--after", str(smaller))
    assert skipped.returncode == 0, skipped.stderr
    assert read_json(larger / "run.json")["status"] == "infeasible"


def test_cli_fetch_reference_copies_once(tmp_path):
    dst = tmp_path / "runs" / "64"
    first = cli("campaign", "fetch-reference", str(BUNDLED), str(dst))
    assert first.returncode == 0, first.stderr
    before = snapshot(dst)
    again = cli("campaign", "fetch-reference", str(BUNDLED), str(dst))
    assert again.returncode == 0 and "kept as is" in again.stderr
    assert snapshot(dst) == before
    missing = cli("campaign", "fetch-reference", str(tmp_path / "nope"), str(tmp_path / "runs" / "128"))
    assert missing.returncode == 2 and "nope: no bundled run here" in missing.stderr


def test_an_optional_setting_left_out_of_the_spec_is_null(tmp_path):
    """Specs carry cudagraph_max_capture only when the config sets it: absent means null."""
    fixed = measured_run(tmp_path / "fixed", cudagraph_max_capture=512)
    with pytest.raises(StaleRunError, match=r"cudagraph_max_capture: run has 512"):
        decide(SPEC, fixed, "measure")
    assert decide({**SPEC, "cudagraph_max_capture": 512}, fixed, "measure").action == "keep"
    default = measured_run(tmp_path / "default", cudagraph_max_capture=None)
    assert decide(SPEC, default, "measure").action == "keep"
    with pytest.raises(StaleRunError, match=r"cudagraph_max_capture: run has None"):
        decide({**SPEC, "cudagraph_max_capture": 512}, default, "measure")
    # A run recorded before the setting existed is kept either way.
    assert (
        decide({**SPEC, "cudagraph_max_capture": 512}, measured_run(tmp_path / "old"), "measure").action
        == "keep"
    )
