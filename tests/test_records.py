"""The typed records of the job spec, run.json and summary.json (jouleflow.records).

Every file here is made by the real writer: specs by the planner, run.json by a real
`jouleflow measure llm` session (against the test SSE server), the job supervisor and the run
guard, summary.json by the energy analysis. The records read them back losslessly, treat a file
without a version as version 1, refuse a newer one, and name the file and key of a bad one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from jouleflow import traces
from jouleflow.analysis.energy import write_summary
from jouleflow.measure.jobconfig import ConfigError, load_job_spec
from jouleflow.plan import attempt, gridtable
from jouleflow.plan.config import load_config
from jouleflow.plan.grid import build_grid
from jouleflow.plan.runguard import write_skipped_infeasible
from jouleflow.records import (
    IDENTITY_KEYS,
    JobSpec,
    RecordError,
    RunRecord,
    SummaryRecord,
    Timing,
    read_run,
)
from test_session import measure

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "resources" / "reference" / "runs"


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> list[Path]:
    """The bundled campaign's job specs, written by the planner into a scratch results dir."""
    work = tmp_path_factory.mktemp("plan")
    grid = build_grid(load_config([REPO / "config" / "config.yaml"]), REPO)
    grid.config["results_dir"] = str(work / "results")  # after planning: where the specs go
    assert gridtable.sync_job_specs(grid) == len(grid.points) == 36  # 3 H100 + 33 H200 runs
    return sorted((work / "results" / "specs").rglob("*.json"))


@pytest.fixture(scope="module")
def session_run(tmp_path_factory) -> Path:
    """run.json as a real LLM session writes it (the SSE test server stands in for vLLM)."""
    work = tmp_path_factory.mktemp("session")
    model = work / "model"
    model.mkdir()
    config = {
        "architectures": ["LlamaForCausalLM"],
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "vocab_size": 512,
    }
    (model / "config.json").write_text(json.dumps(config))
    out = work / "runs" / "p1"
    r = measure(out, model, env={"TEST_SERVER_TOKEN_DELAY_S": "0.01"})
    assert r.returncode == 0, r.stderr
    return out


def edited(path: Path, change) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


# --- round trips ------------------------------------------------------------------------------


def test_job_specs_round_trip_and_are_version_1_without_a_key(specs):
    for path in specs:
        spec = JobSpec.read(path)
        assert spec.schema_version == 1 and "schema_version" not in json.loads(path.read_text())
        assert spec.to_json() == path.read_text()  # lossless, byte for byte
        # The run key names the precision when it is not the model's own (`<model>@fp8`).
        precision = "fp8" if path.parts[-4].endswith("@fp8") else "bf16"
        assert (spec.task, spec.gpu, spec.num_gpus, spec.precision) == (
            path.parts[-5],
            path.parts[-3],
            1,
            precision,
        )
        assert spec.gpu in ("H100", "H200")
        assert spec.model.replace("/", "--") == path.parts[-4].removesuffix("@fp8")
        assert spec.model in (
            "meta-llama/Llama-3.1-8B-Instruct",
            "Qwen/Qwen3-8B",
            "Qwen/Qwen3-VL-8B-Instruct",
            "Qwen/Qwen3-30B-A3B-Instruct-2507",
            "Qwen/Qwen3-32B",
            "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
        )
        assert str(spec.batch_size) == path.stem
        assert spec.load_format == "dummy" and spec.after is None
        assert load_job_spec(path) == spec.to_dict()  # what `jouleflow measure --config` builds on


def test_run_json_of_a_real_session_round_trips(session_run):
    text = (session_run / traces.RUN_JSON).read_text()
    run = read_run(session_run)
    assert run.to_json() == text
    assert RunRecord.from_dict(json.loads(text)) == run
    assert (run.status, run.reason, run.schema_version) == ("ok", None, 2)
    assert run.config["model"] == "test/model" and run.config["batch_size"] == 4
    assert run.energy_source is None and run.gpus == []  # --no-energy
    client = run.load.pop("client")  # measure.client_monitor: the load client's own CPU and loop lag
    assert run.load == {"requests": 12, "ok": 12, "aborted": None}
    assert client["cpu_s"] > 0 and client["wall_s"] > 0 and client["loop_lag_p50_s"] >= 0
    assert isinstance(run.timing, Timing)
    assert run.provenance["start_time"] <= run.timing.t0 <= run.timing.t_last_end <= run.end_time
    assert len(run.request_set["sha256"]) == 64 and run.server["metrics"] is True


def test_summary_json_round_trips(session_run, tmp_path):
    path = write_summary(session_run, tmp_path / "summary.json")
    summary = SummaryRecord.read(path)
    assert summary.to_json() == path.read_text()
    assert summary.status == "ok" and summary.num_ok == 12 and summary.schema_version == 1
    assert "no-energy-sensor" in summary.flags and summary.valid is False
    doc = json.loads(path.read_text())
    assert doc["summary_schema_version"] == 1 and "mean_batch_size" not in doc  # an LLM run's keys


@pytest.mark.parametrize("run_dir", sorted(BUNDLED.glob("*/*/*/*/*")), ids=lambda p: p.name)
def test_the_bundled_campaign_reads_losslessly(run_dir, tmp_path):
    run = read_run(run_dir)
    assert run.to_dict() == json.loads((run_dir / traces.RUN_JSON).read_text())
    summary = SummaryRecord.read(write_summary(run_dir, tmp_path / "summary.json"))
    assert summary.status == "ok"
    diffusion = run.config.get("modality") == "diffusion"
    assert (summary.energy_per_image_j if diffusion else summary.energy_per_token_j) > 0
    # One bundled point is invalid as measured: Qwen3-VL-8B at B = 256, whose request pool ran out before
    # J/token was known to the campaign's +-2 % (resources/reference/PROVENANCE.md, host E).
    if run_dir.relative_to(BUNDLED).as_posix() == "image-chat/Qwen--Qwen3-VL-8B-Instruct/H200/tp1/256":
        assert not summary.valid and summary.flags == ["not-converged"]
    else:
        assert summary.valid and summary.flags == []


def test_supervisor_and_guard_records_read_back(specs, tmp_path):
    spec = JobSpec.read(specs[0])
    failed = attempt.record_failed(spec, tmp_path / "failed", "timed out", [], started=1.0)
    run = read_run(failed)
    assert (run.status, run.reason, run.config) == ("failed", "timed out", spec.to_dict())
    assert run.provenance["recorded_by"] == "supervisor" and run.timing is None
    assert run.to_json() == (failed / traces.RUN_JSON).read_text()
    skipped = read_run(write_skipped_infeasible(spec.to_dict(), tmp_path / "skipped", failed, "OOM"))
    assert skipped.status == "infeasible" and "OOM" in skipped.reason and skipped.config == spec.to_dict()
    assert skipped.config_hash == run.config_hash  # the same spec, the same hash


# --- versions ---------------------------------------------------------------------------------


def test_a_file_without_a_version_reads_as_version_1(session_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(session_run, run_dir)
    edited(run_dir / traces.RUN_JSON, lambda d: d.pop("schema_version"))
    assert read_run(run_dir).schema_version == 1
    path = edited(write_summary(run_dir, tmp_path / "s.json"), lambda d: d.pop("summary_schema_version"))
    assert SummaryRecord.read(path).schema_version == 1


def test_a_newer_version_is_refused_naming_the_file(session_run, specs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(session_run, run_dir)
    summary = write_summary(run_dir, tmp_path / "summary.json")
    edited(run_dir / traces.RUN_JSON, lambda d: d.update(schema_version=3))
    with pytest.raises(
        RecordError, match=r"run/run.json: schema version 3 is newer than this jouleflow \(2\)"
    ):
        read_run(run_dir)
    edited(summary, lambda d: d.update(summary_schema_version=3))
    with pytest.raises(RecordError, match=r"summary.json: schema version 3 is newer"):
        SummaryRecord.read(summary)
    spec = edited(Path(shutil.copy(specs[0], tmp_path / "spec.json")), lambda d: d.update(schema_version=2))
    with pytest.raises(RecordError, match=r"spec.json: schema version 2 is newer"):
        JobSpec.read(spec)
    with pytest.raises(ConfigError, match=r"spec.json: schema version 2 is newer"):
        load_job_spec(spec)  # `jouleflow measure --config` refuses it before anything runs


def test_a_version_2_spec_carries_its_version(specs):
    spec = JobSpec.read(specs[0])
    assert "schema_version" not in spec.to_dict()
    newer = JobSpec(**{k: getattr(spec, k) for k in IDENTITY_KEYS}, fields=spec.fields, schema_version=2)
    assert newer.to_dict()["schema_version"] == 2


# --- bad files name the file and the key ------------------------------------------------------


def test_missing_and_unknown_keys_are_named(session_run, specs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(session_run, run_dir)
    summary = write_summary(run_dir, tmp_path / "summary.json")
    edited(run_dir / traces.RUN_JSON, lambda d: d.pop("status"))
    with pytest.raises(RecordError, match=r"run/run.json: missing key\(s\) 'status'"):
        read_run(run_dir)
    edited(run_dir / traces.RUN_JSON, lambda d: d.update(status="ok", statsu="ok"))
    with pytest.raises(RecordError, match=r"run/run.json: unknown key\(s\) 'statsu'"):
        read_run(run_dir)
    edited(run_dir / traces.RUN_JSON, lambda d: (d.pop("statsu"), d.update(status="done")))
    with pytest.raises(RecordError, match=r"run/run.json: status must be one of"):
        read_run(run_dir)
    edited(summary, lambda d: d.pop("steady_end"))
    with pytest.raises(RecordError, match=r"summary.json: missing key\(s\) 'steady_end'"):
        SummaryRecord.read(summary)
    spec = edited(Path(shutil.copy(specs[0], tmp_path / "spec.json")), lambda d: d.pop("batch_size"))
    with pytest.raises(RecordError, match=r"spec.json: missing key\(s\) 'batch_size'"):
        JobSpec.read(spec)
    edited(spec, lambda d: d.update(batch_size="64"))
    with pytest.raises(RecordError, match=r"spec.json: 'batch_size' must be int, got '64'"):
        JobSpec.read(spec)


def test_a_summary_field_that_does_not_exist_is_refused():
    summary = SummaryRecord()
    summary.update(steady_start=1.0)
    with pytest.raises(AttributeError, match="no field 'steady_strat'"):
        summary.update(steady_strat=2.0)
    with pytest.raises(AttributeError):
        summary.steady_strat = 2.0  # slots: a misspelt attribute is no silent new key


def test_the_run_writer_refuses_an_unknown_status(tmp_path):
    writer = traces.RunDirWriter(tmp_path / "run")
    with pytest.raises(ValueError, match="status must be one of"):
        RunRecord(status="done", config={})
    with pytest.raises(ValueError, match="status must be one of"):
        writer.commit({"status": "done", "config": {}})
    assert not traces.is_complete_run(tmp_path / "run")
