"""The measured path end to end, as a user runs it: `snakemake` with `source: measure`.

A copy of the workflow measures a tiny random-weight Llama served by a real `transformers serve`
on CPU, with the test-only fake GPU (patched pynvml under Zeus's real code) as the energy sensor
and `gpus: [local]` detecting it. The scenarios run in order on one campaign directory:

grid -> rerun (nothing to do) -> --forcerun measure (nothing re-measured) -> insert a batch size
(only it measured) -> change a measured key (refused at planning, every time, naming the key) ->
revert (nothing to do) -> a model whose engine crashes (recorded failed, the larger batch still
tried, every aggregate built) -> kill -9 of a measurement (no orphaned engine, recorded failed,
`--forcerun measure` measures it again).

Skipped without torch / transformers[serving], unless JOULEFLOW_REQUIRE_E2E=1 (CI).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from pipeline_helpers import copy_workflow
from test_e2e_cpu import _have, _require, make_tiny_llama

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
TASK = "cpu-chat"
GROUP = f"{TASK}/test--tiny-llama/H100/tp1"
CRASHY = f"{TASK}/test--crashy/H100/tp1"


def campaign_config(model: Path, crash_dir: Path, tiny_batches, with_crashy=False, seed=0) -> dict:
    entry = {
        "architecture": "dense",
        "total_params_b": 0.001,
        "active_params_b": 0.001,
        "load_format": "real",
        "engine": "transformers",
        "path": str(model),
    }
    sweep = {"models": ["test/tiny-llama"], "tasks": [TASK], "gpus": ["local"], "parallelism": ["tp1"]}
    sweeps = [{"name": "tiny", **sweep, "batch_sizes": tiny_batches}]
    if with_crashy:
        sweeps.append({"name": "crashy", **sweep, "models": ["test/crashy"], "batch_sizes": [2, 4]})
    return {
        "source": "measure",
        "results_dir": "results",
        "models": {
            "test/tiny-llama": entry,
            # Its engine cannot import transformers: it dies at start-up, as a crashing engine does.
            "test/crashy": {**entry, "env": {"PYTHONPATH": str(crash_dir)}},
        },
        "tasks": {
            TASK: {
                "modality": "llm",
                "endpoint": "chat",
                "num_requests": 12,
                "requests_per_batch": 4,
                "sampling": {"temperature": 1.0},
                "request_set": {
                    "kind": "synthetic",
                    "prompt_len": "fixed:12",
                    "fixed_output_len": 12,
                    "seed": seed,
                },
            }
        },
        "sweeps": sweeps,
        # config/config.yaml's vLLM server arguments and environment are not for transformers serve
        "measurement": {"health_timeout_s": 300, "runtime_min": 15, "server_args": [], "env": {}},
        "validity": {"min_steady_s": 0.2, "min_running_fraction": 0.5},
        "analysis": {"latency_targets": {TASK: ["2s"]}},
    }


class Campaign:
    def __init__(self, workdir: Path, model: Path, crash_dir: Path) -> None:
        self.workdir, self.model, self.crash_dir = workdir, model, crash_dir
        self.env = {
            **os.environ,
            "PATH": f"{workdir / '.test-bin'}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join([str(TESTS / "fakegpu"), str(workdir / "workflow")]),
            "HF_HUB_OFFLINE": "1",
        }

    def write_config(self, **kwargs) -> Path:
        path = self.workdir / "config" / "e2e.yaml"
        path.write_text(yaml.safe_dump(campaign_config(self.model, self.crash_dir, **kwargs)))
        return path

    @staticmethod
    def command(*args: str) -> list[str]:
        """The user's command: snakemake --cores all ... --configfile (last: it takes several values)."""
        return [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "all",
            "--nocolor",
            *args,
            "--configfile",
            "config/e2e.yaml",
        ]

    def snakemake(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        cmd = self.command(*args)
        r = subprocess.run(
            cmd, cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=1200, **kwargs
        )
        if check:
            assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
        return r

    def planned(self, *args: str) -> dict[str, int]:
        """Jobs per rule of a dry run (its job stats)."""
        r = self.snakemake("-n", *args)
        text = r.stdout + r.stderr
        if "Nothing to be done" in text:
            return {}
        return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", text, re.M) if m[1] != "total"}

    def snapshot(self, under: str = "results") -> dict[str, str]:
        root = self.workdir / under
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "/failures/" not in f"/{p.relative_to(root)}"
        }

    def run_json(self, key: str) -> dict:
        return json.loads((self.workdir / "results" / "runs" / key / "run.json").read_text())


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Campaign:
    _require(
        _have("torch") and _have("transformers") and _have("fastapi") and _have("uvicorn"),
        "torch/transformers[serving] not installed (pip install torch==2.13.0 'transformers[serving]')",
    )
    root = tmp_path_factory.mktemp("measured-campaign")
    model = make_tiny_llama(root / "tiny-llama")
    crash_dir = root / "crash"
    (crash_dir / "transformers").mkdir(parents=True)
    (crash_dir / "transformers" / "__init__.py").write_text(
        "raise SystemExit('engine crash (injected by the test)')\n"
    )
    c = Campaign(copy_workflow(root / "wf"), model, crash_dir)
    c.write_config(tiny_batches=[2, 8])
    return c


def test_grid_then_rerun_does_nothing(campaign):
    assert campaign.planned().get("measure") == 2
    campaign.snakemake()
    for b in (2, 8):
        doc = campaign.run_json(f"{GROUP}/{b}")
        assert doc["status"] == "ok" and doc["config"]["gpu"] == "H100"
        assert doc["provenance"]["energy_source"] == "nvml-via-zeus"
    assert campaign.run_json(f"{GROUP}/8")["config"]["after"] == f"results/runs/{GROUP}/2"
    summary = pq.read_table(campaign.workdir / "results/summary/summary.parquet").to_pylist()
    assert sorted(r["batch_size"] for r in summary) == [2, 8] and all(r["status"] == "ok" for r in summary)
    assert campaign.planned() == {}
    before = campaign.snapshot()
    r = campaign.snakemake()
    assert "Nothing to be done" in r.stdout + r.stderr
    assert campaign.snapshot() == before


def test_forcerun_measure_remeasures_nothing(campaign):
    before = campaign.snapshot()
    campaign.snakemake("--forcerun", "measure")
    # every run directory, and every table and figure computed from them, byte for byte
    assert campaign.snapshot() == before
    # the forced job ran again and kept the run; both attempts' logs are there
    log = (campaign.workdir / "logs" / "measure" / GROUP / "2.attempts.log").read_text()
    assert log.count("=== attempt at") == 2, log
    assert "+ jouleflow measure llm" in log and log.endswith("finished run matches the config; kept as is\n")


def test_inserting_a_batch_size_measures_only_it(campaign):
    runs_before = campaign.snapshot("results/runs")
    campaign.write_config(tiny_batches=[2, 4, 8])
    assert campaign.planned().get("measure") == 1
    campaign.snakemake()
    runs_after = campaign.snapshot("results/runs")
    added = {k for k in runs_after if k.startswith(f"{GROUP}/4/")}
    assert added and {k: v for k, v in runs_after.items() if k not in added} == runs_before
    assert campaign.run_json(f"{GROUP}/4")["config"]["after"] == f"results/runs/{GROUP}/2"


def test_changed_measured_key_is_refused_every_time_until_reverted(campaign):
    before = campaign.snapshot()
    campaign.write_config(tiny_batches=[2, 4, 8], seed=1)
    for _ in range(3):
        r = campaign.snakemake("-n", check=False)
        text = r.stdout + r.stderr
        assert r.returncode != 0 and "3 finished run(s) no longer match the config" in text, text[-3000:]
        assert "synthetic: run has" in text and f"results/runs/{GROUP}/8" in text
        r = campaign.snakemake(check=False)
        assert r.returncode != 0 and "no longer match" in r.stdout + r.stderr
    assert campaign.snapshot() == before
    campaign.write_config(tiny_batches=[2, 4, 8])
    assert campaign.planned() == {}
    campaign.snakemake()
    assert campaign.snapshot() == before


def test_a_crashing_engine_is_recorded_and_the_rest_is_built(campaign):
    campaign.write_config(tiny_batches=[2, 4, 8], with_crashy=True)
    campaign.snakemake()  # exit 0: failed points are results, not errors
    for b in (2, 4):  # a crash is no reason to skip the larger batch size: both were tried
        doc = campaign.run_json(f"{CRASHY}/{b}")
        assert doc["status"] == "failed" and "server" in doc["reason"], doc["reason"]
        assert (campaign.workdir / "results" / "runs" / CRASHY / str(b) / "server.log").is_file()
    summary = pq.read_table(campaign.workdir / "results/summary/summary.parquet").to_pylist()
    failed = [r for r in summary if r["status"] == "failed"]
    assert sorted(r["batch_size"] for r in failed) == [2, 4] and all(r["reason"] for r in failed)
    for table in ("tables/frontier.parquet", "tables/recommendations.csv", "figures/task-energy.png"):
        assert (campaign.workdir / "results" / table).is_file()
    failures = campaign.workdir / "results" / "failures" / CRASHY / "2.jsonl"
    assert [json.loads(line)["status"] for line in failures.read_text().splitlines()] == ["failed"]
    # the next invocation tries the failed points again, keeping the earlier attempt beside them
    campaign.snakemake()
    assert len(failures.read_text().splitlines()) == 2
    kept = list((campaign.workdir / "results" / "runs" / CRASHY).glob("2.failed-*"))
    assert len(kept) == 1 and json.loads((kept[0] / "run.json").read_text())["status"] == "failed"


def _children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for k in map(int, kids):
            out |= {k} | _children(k)
    return out


def _find(pattern: str, cwd: Path) -> list[int]:
    """Processes whose command line matches, running in this campaign's directory (not another test's)."""
    pids = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            here = Path(os.readlink(p / "cwd")) == cwd
        except OSError:
            continue
        if here and re.search(pattern, cmd):
            pids.append(int(p.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_of_a_measurement_leaves_no_engine_and_is_recorded(campaign):
    campaign.write_config(tiny_batches=[2, 4, 8, 16], with_crashy=True)
    job = subprocess.Popen(
        campaign.command(),
        cwd=campaign.workdir,
        env=campaign.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 300
        measure, engine = None, set()
        while time.time() < deadline and not engine:
            pids = _find(rf"jouleflow measure llm .*{re.escape(GROUP)}/16\b", campaign.workdir)
            measure = pids[0] if pids else None
            engine = {p for p in _children(measure) if _find_cmd(p, "serve")} if measure else set()
            time.sleep(0.5)
        assert measure and engine, "the measurement's engine never started"
        time.sleep(2)
        os.kill(measure, signal.SIGKILL)
        gone_by = time.time() + 20
        while time.time() < gone_by and any(_alive(p) for p in engine):
            time.sleep(0.2)
        assert not any(_alive(p) for p in engine), "the engine outlived its measurement (orphaned)"
        out, _ = job.communicate(timeout=600)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, out[-4000:]
    doc = campaign.run_json(f"{GROUP}/16")
    assert doc["status"] == "failed" and "killed by SIGKILL" in doc["reason"], doc["reason"]
    assert "session.log" in doc["provenance"]["salvaged_files"]
    assert not list((campaign.workdir / "results" / "runs" / GROUP).glob(".16.partial-*"))
    # the next invocation measures it again; the failed attempt is kept beside it
    before = campaign.snapshot("results/runs")
    campaign.snakemake()
    assert campaign.run_json(f"{GROUP}/16")["status"] == "ok"
    kept = list((campaign.workdir / "results" / "runs" / GROUP).glob("16.failed-*"))
    assert len(kept) == 1 and json.loads((kept[0] / "run.json").read_text())["status"] == "failed"
    after = campaign.snapshot("results/runs")
    unchanged = {k: v for k, v in before.items() if not k.startswith((f"{GROUP}/16/", f"{CRASHY}/"))}
    assert {k: after[k] for k in unchanged} == unchanged
    # a successful retry is final: no job of that point is due again (the crashing model's still are)
    dry = campaign.snakemake("-n").stdout
    assert not re.search(r"model=test--tiny-llama, gpu=H100, parallelism=tp1, batch=\d+", dry)
    assert re.search(r"model=test--crashy, gpu=H100, parallelism=tp1, batch=2", dry)


def _find_cmd(pid: int, word: str) -> bool:
    try:
        return word in (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    except OSError:
        return False
