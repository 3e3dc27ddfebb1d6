"""`jouleflow measure llm` flag/job-spec merging and `jouleflow prepare requests`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from jouleflow.cli import build_parser
from jouleflow.cli.measure import duration, job_dict
from jouleflow.measure.requestset import read_request_set

REPO = Path(__file__).resolve().parents[1]
HIST = REPO / "resources" / "mlenergy-v3" / "models" / "meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json"


def parse(*argv: str):
    return build_parser().parse_args(["measure", "llm", "-o", "out", *argv])


def test_flags_override_the_job_spec(tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "model: meta-llama/Llama-3.1-8B-Instruct\nbatch_size: 64\nserver_args: [--enforce-eager]\n"
        "env: {A: '1'}\nsampling: {temperature: 0.5}\nsynthetic: {output_lengths: h.json, seed: 3}\n"
    )
    d = job_dict(
        parse(
            "--config",
            str(spec),
            "--batch-size",
            "128",
            "--server-arg=--foo",
            "--env",
            "B=2",
            "--top-p",
            "0.9",
            "--seed",
            "4",
            "--launcher",
            "python3 -m vllm.entrypoints.cli.main serve",
            "--sampling",
            "min_tokens=5",
            "--extra-body",
            '{"x": [1]}',
        )
    )
    assert d["batch_size"] == 128 and d["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert d["server_args"] == ["--enforce-eager", "--foo"]
    assert d["env"] == {"A": "1", "B": "2"}
    assert d["sampling"] == {"temperature": 0.5, "top_p": 0.9, "min_tokens": 5}
    assert d["synthetic"] == {"output_lengths": "h.json", "seed": 4}
    assert d["launcher"] == ["python3", "-m", "vllm.entrypoints.cli.main", "serve"]
    assert d["extra_body"] == {"x": [1]}
    assert "out" not in d and "func" not in d
    # flags not given leave the spec alone; sampling flags extend the default sampling
    d2 = job_dict(parse("--model", "m", "--batch-size", "8", "--temperature", "0"))
    assert d2 == {"model": "m", "batch_size": 8, "sampling": {"temperature": 0.0, "top_p": 0.95}}


def test_durations():
    assert duration("30s") == 30 and duration("250ms") == 0.25 and duration("1.5min") == 90
    with pytest.raises(argparse.ArgumentTypeError, match="no unit"):
        duration("2")


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO / "workflow")}
    return subprocess.run([sys.executable, "-m", "jouleflow", *argv], capture_output=True, text=True, env=env)


def test_print_config_and_config_errors(tmp_path):
    r = _cli(
        "measure",
        "llm",
        "--model",
        "m",
        "--batch-size",
        "64",
        "--output-len",
        "10",
        "--tp",
        "2",
        "--print-config",
        "-o",
        str(tmp_path / "x"),
    )
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["tensor_parallel"] == 2 and cfg["synthetic"]["fixed_output_len"] == 10
    assert not (tmp_path / "x").exists()
    bad = tmp_path / "job.json"
    bad.write_text(json.dumps({"model": "m", "batch_size": 8, "max_num_seq": 3}))
    r = _cli("measure", "llm", "--config", str(bad), "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and f"{bad}: unknown key(s) max_num_seq" in r.stderr
    r = _cli("measure", "llm", "--model", "m", "--batch-size", "8", "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "synthetic" in r.stderr and "request_set" in r.stderr


def test_print_config_needs_no_run_directory(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf")}
    llm = _cli("measure", "llm", "--model", "m", "--batch-size", "8", "--output-len", "4", "--print-config")
    assert llm.returncode == 0, llm.stderr
    assert json.loads(llm.stdout)["batch_size"] == 8
    pixart = ("--model", "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS", "-b", "2")
    diffusion = _cli("measure", "diffusion", *pixart, "--print-config", env=env)
    assert diffusion.returncode == 0, diffusion.stderr
    assert json.loads(diffusion.stdout)["pipeline"] == "pixart-sigma"
    # Without --print-config, -o is required, as before (and nothing is run).
    for argv in (("llm", "--model", "m", "--batch-size", "8", "--output-len", "4"), ("diffusion", *pixart)):
        r = _cli("measure", *argv, env=env)
        assert r.returncode == 2
        assert "error: the following arguments are required: -o/--out" in r.stderr
        assert "Traceback" not in r.stderr


def test_prepare_requests(tmp_path):
    out = tmp_path / "rs.parquet"
    r = _cli(
        "prepare",
        "requests",
        "-o",
        str(out),
        "--num-requests",
        "100",
        "--output-lengths",
        str(HIST),
        "--gpu",
        "H100",
        "--num-gpus",
        "1",
        "--max-num-seqs",
        "256",
        "--prompt-len",
        "uniform:50,60",
    )
    assert r.returncode == 0, r.stderr
    specs = read_request_set(out)
    assert len(specs) == 100 and all(s.ignore_eos and s.messages for s in specs)
    meta = pq.read_schema(out).metadata
    assert b"max_num_seqs=256" in meta[b"jouleflow_histogram"]
    again = _cli("prepare", "requests", "-o", str(out), "--num-requests", "100", "--output-len", "5")
    assert again.returncode == 2 and "exists" in again.stderr
    r = _cli("prepare", "requests", "-o", str(tmp_path / "y.parquet"), "--output-lengths", str(HIST))
    assert r.returncode == 2 and "configurations match" in r.stderr
