"""Campaign mode `measurement.shared_server` end to end, as a user runs it: `snakemake` on a copy of
the workflow, one job per group measuring every batch size on one server.

The test server stands in for vLLM (tests/sse_test_server.py, the model's `launcher`): it honours
--max-num-seqs and the batch-limit file through the product's own reader, as jouleflow's scheduler
does inside vLLM, and with TEST_SERVER_MODE=oom-above:N fails to start, out of memory, when sized
beyond N. Power comes from the fake GPU (tests/fakegpu) under Zeus's real code, `gpus: [local]`.

In order on one campaign: plan (one group job, no per-point job) -> run (each batch size its own run
on one server) -> rerun (nothing) -> a batch size added (only it measured, on its own server; the
others byte for byte) -> a measured key changed (refused at planning, naming the key) -> reverted ->
a group whose largest batch size does not fit (recorded infeasible; the smaller ones measured on a
server sized for them) -> an invocation stopped mid-group (SIGTERM to its process group, as `timeout`
and a cancelled job do; Snakemake deletes the failed job's outputs): the next one measures only the
point that was cut short and links the finished one back byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from pipeline_helpers import copy_workflow

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
SERVER = TESTS / "sse_test_server.py"
TASK = "cpu-chat"
GROUP = f"{TASK}/test--served/H100/tp1"
TIGHT = f"{TASK}/test--tight/H100/tp1"
SLOW = f"{TASK}/test--slow/H100/tp1"


def campaign_config(
    model: Path, batches: list[int], tight: bool = False, slow: bool = False, top_p: float = 0.95
) -> dict:
    entry = {
        "architecture": "dense",
        "total_params_b": 0.001,
        "active_params_b": 0.001,
        "load_format": "real",
        "engine": "vllm",
        "path": str(model),
        "launcher": [sys.executable, str(SERVER)],
        "env": {"TEST_SERVER_TOKEN_DELAY_S": "0.004"},
    }
    sweep = {"tasks": [TASK], "gpus": ["local"], "parallelism": ["tp1"]}
    sweeps = [{"name": "served", "models": ["test/served"], **sweep, "batch_sizes": batches}]
    if tight:
        sweeps.append({"name": "tight", "models": ["test/tight"], **sweep, "batch_sizes": [2, 4, 8]})
    if slow:
        sweeps.append({"name": "slow", "models": ["test/slow"], **sweep, "batch_sizes": [2, 4]})
    return {
        "source": "measure",
        "results_dir": "results",
        "models": {
            "test/served": entry,
            # Its server runs out of memory when started for more than 4 sequences.
            "test/tight": {**entry, "env": {**entry["env"], "TEST_SERVER_MODE": "oom-above:4"}},
            # Slow tokens: its larger point is still running when the invocation is stopped.
            "test/slow": {**entry, "env": {"TEST_SERVER_TOKEN_DELAY_S": "0.03"}},
        },
        "tasks": {
            TASK: {
                "modality": "llm",
                "endpoint": "chat",
                "num_requests": 400,
                "sampling": {"temperature": 1.0, "top_p": top_p},
                "request_set": {
                    "kind": "synthetic",
                    "prompt_len": "fixed:5",
                    "fixed_output_len": 30,
                    "seed": 0,
                },
            }
        },
        "sweeps": sweeps,
        "measurement": {
            "shared_server": True,
            "cudagraph_max_capture": 512,
            "health_timeout_s": 60,
            "runtime_min": 15,
            "idle_baseline_s": 1,
            "load": {
                "arrival": "saturate",
                "target_window_s": 2,
                "target_ci": 0.5,
                "max_load_s": 20,
                "interval_s": 0.5,
                "headroom": 3,
            },
        },
        "validity": {"min_steady_s": 1, "min_running_fraction": 0.5},
        "analysis": {"latency_targets": {TASK: ["2s"]}},
        "figures": {"timelines": False},
    }


class Campaign:
    def __init__(self, workdir: Path, model: Path) -> None:
        self.workdir, self.model = workdir, model
        self.env = {
            **os.environ,
            "PATH": f"{workdir / '.test-bin'}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join([str(TESTS / "fakegpu"), str(workdir / "workflow")]),
            "JOULEFLOW_GPU_LOCK_DIR": os.environ.get("TMPDIR", "/tmp"),
        }

    def write_config(self, batches: list[int], **kwargs) -> None:
        path = self.workdir / "config" / "e2e.yaml"
        path.write_text(yaml.safe_dump(campaign_config(self.model, batches, **kwargs)))

    def snakemake(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "snakemake", "--cores", "all", "--nocolor", *args]
        cmd += ["--configfile", "config/e2e.yaml"]
        r = subprocess.run(cmd, cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=900)
        if check:
            assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
        return r

    def planned(self) -> dict[str, int]:
        text = (r := self.snakemake("-n")).stdout + r.stderr
        if "Nothing to be done" in text:
            return {}
        return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", text, re.M) if m[1] != "total"}

    def run_json(self, key: str) -> dict:
        return json.loads((self.workdir / "results" / "runs" / key / "run.json").read_text())

    def snapshot(self, under: str) -> dict[str, str]:
        root = self.workdir / under
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Campaign:
    root = tmp_path_factory.mktemp("shared-campaign")
    model = root / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_attention_heads": 4, "num_hidden_layers": 2}))
    c = Campaign(copy_workflow(root / "wf"), model)
    c.write_config([2, 4])
    return c


def test_one_job_measures_the_group_on_one_server_then_rerun_does_nothing(campaign):
    planned = campaign.planned()
    assert planned.get("measure_shared_cpu_chat_test__served_H100_tp1") == 1 and "measure" not in planned
    campaign.snakemake()
    docs = {b: campaign.run_json(f"{GROUP}/{b}") for b in (2, 4)}
    for b, doc in docs.items():
        assert doc["status"] == "ok", doc["reason"]
        assert doc["config"]["batch_size"] == b and doc["config"]["server_max_num_seqs"] == 4
        assert doc["config"].get("after") is None
        assert doc["provenance"]["energy_source"] == "nvml-via-zeus"
        assert doc["provenance"]["shared_engine"]["points"] == 2
    assert len({d["provenance"]["shared_engine"]["server_pid"] for d in docs.values()}) == 1
    server = pq.read_table(campaign.workdir / "results" / "runs" / GROUP / "2" / "server.parquet")
    assert max(server.column("running").to_pylist()) == 2  # the engine held the smaller batch
    summary = pq.read_table(campaign.workdir / "results/summary/summary.parquet").to_pylist()
    assert sorted((r["batch_size"], r["status"]) for r in summary) == [(2, "ok"), (4, "ok")]
    assert campaign.planned() == {}


def test_an_added_batch_size_is_measured_alone_on_its_own_server(campaign):
    before = campaign.snapshot(f"results/runs/{GROUP}")
    # Runs in place that the group's store lacks (measured elsewhere and copied in) are kept as they are.
    store = campaign.workdir / "results" / "shared" / GROUP / "runs"
    shutil.rmtree(store / "2")
    shutil.rmtree(store / "4")
    campaign.write_config([2, 4, 8])
    assert campaign.planned().get("measure_shared_cpu_chat_test__served_H100_tp1") == 1
    campaign.snakemake()
    after = campaign.snapshot(f"results/runs/{GROUP}")
    assert {k: v for k, v in after.items() if not k.startswith("8/")} == before
    doc = campaign.run_json(f"{GROUP}/8")
    assert doc["status"] == "ok" and doc["config"]["server_max_num_seqs"] == 8
    assert doc["provenance"]["shared_engine"]["points"] == 1
    log = (campaign.workdir / "logs/measure_shared" / f"{GROUP}.attempts.log").read_text()
    assert log.count("finished run in place, matches the config; kept and added to the group's store") == 2
    for b in (2, 4):
        assert (store / str(b) / "run.json").read_bytes() == (
            campaign.workdir / "results" / "runs" / GROUP / str(b) / "run.json"
        ).read_bytes()
    assert campaign.planned() == {}


def test_a_changed_measured_key_is_refused_until_reverted(campaign):
    campaign.write_config([2, 4, 8], top_p=0.9)
    r = campaign.snakemake("-n", check=False)
    assert r.returncode != 0
    assert "3 finished run(s) no longer match the config" in r.stdout + r.stderr
    assert "sampling" in r.stdout + r.stderr
    campaign.write_config([2, 4, 8])
    assert campaign.planned() == {}


def test_a_largest_batch_size_that_does_not_fit_is_recorded_infeasible(campaign):
    campaign.write_config([2, 4, 8], tight=True)
    assert campaign.planned().get("measure_shared_cpu_chat_test__tight_H100_tp1") == 1
    campaign.snakemake()
    big = campaign.run_json(f"{TIGHT}/8")
    assert big["status"] == "infeasible" and "out of memory" in big["reason"].lower()
    assert (
        "torch.OutOfMemoryError"
        in (campaign.workdir / "results/runs" / TIGHT / "8" / "server.log").read_text()
    )
    for b in (2, 4):
        doc = campaign.run_json(f"{TIGHT}/{b}")
        assert doc["status"] == "ok", doc["reason"]
        assert doc["config"]["server_max_num_seqs"] == 4  # the next server was sized for them
    assert campaign.planned() == {}


def test_an_invocation_stopped_mid_group_loses_no_finished_point(campaign):
    campaign.write_config([2, 4, 8], tight=True, slow=True)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "all",
        "--nocolor",
        "--configfile",
        "config/e2e.yaml",
    ]
    proc = subprocess.Popen(
        cmd, cwd=campaign.workdir, env=campaign.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    store = campaign.workdir / "results" / "shared" / SLOW / "runs"
    deadline = time.monotonic() + 300
    while not (store / "2" / "run.json").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-4000:]
        time.sleep(0.5)
    first = (store / "2" / "run.json").read_bytes()
    assert json.loads(first)["status"] == "ok"
    os.killpg(proc.pid, signal.SIGTERM)  # what `timeout` and Ctrl-C do to the whole invocation
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "Error in rule measure_shared_cpu_chat_test__slow_H100_tp1" in out
    # The failed job left no run directory (Snakemake deletes a failed job's outputs); the store
    # kept the finished point.
    assert not (campaign.workdir / "results" / "runs" / SLOW / "2").exists()
    assert (store / "2" / "run.json").read_bytes() == first
    assert campaign.planned().get("measure_shared_cpu_chat_test__slow_H100_tp1") == 1
    campaign.snakemake()
    assert (campaign.workdir / "results" / "runs" / SLOW / "2" / "run.json").read_bytes() == first
    assert campaign.run_json(f"{SLOW}/4")["status"] == "ok"
    # The cut-short point was measured again on a server sized for it alone, its attempt kept aside.
    assert campaign.run_json(f"{SLOW}/4")["provenance"]["shared_engine"]["points"] == 1
    assert list(store.glob("4.failed-*"))
    assert "Nothing to be done" in (r2 := campaign.snakemake()).stdout + r2.stderr
