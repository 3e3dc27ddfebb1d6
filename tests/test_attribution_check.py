"""benchmarks/attribution_check.sh end to end on CPU: the test server stands in for vLLM, the fake
GPU (Zeus's real code over patched pynvml) for the H200. What it proves: the documented GPU command
runs as written and leaves, per point, a run, a summary, an attribution and the prediction tables."""

from __future__ import annotations

import json
import subprocess

import pytest
from test_reuse import REPO, _env, _spec


@pytest.mark.slow
def test_attribution_check_measures_both_prompt_lengths_on_one_server(tmp_path):
    spec = _spec(tmp_path, "--idle-baseline", "0.5s")
    out = tmp_path / "check"
    r = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "attribution_check.sh"), str(spec), str(out), "4", "5,60"],
        env={**_env(), "N": "400"},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    names = {"4-p5", "4-p60"}
    assert {p.name for p in (out / "runs").iterdir() if not p.name.startswith(".")} == names
    pids = set()
    for name in names:
        run = json.loads((out / "runs" / name / "run.json").read_text())
        assert run["status"] == "ok" and run["config"]["num_requests"] == 400
        pids.add(run["provenance"]["shared_engine"]["server_pid"])
        attribution = json.loads((out / "summaries" / name / "attribution.json").read_text())
        assert attribution["energy_j"] > 0 and attribution["window"]["duration_s"] > 0
        assert (out / "summaries" / name / "request_energy.parquet").is_file()
    assert len(pids) == 1  # one server for both request sets
    predict = json.loads((out / "summaries" / "predict-4.json").read_text())
    assert predict  # the check wrote its figures, identifiable or not (a 3 s CPU window is not)
    assert "== batch size 4: p5 vs p60" in r.stdout and "| fit on | predict |" in r.stdout


def test_attribution_check_refuses_a_burst_spec(tmp_path):
    spec = tmp_path / "burst.json"
    doc = json.loads(_spec(tmp_path).read_text())
    doc.pop("saturate", None)
    doc["arrival"] = "burst"
    spec.write_text(json.dumps(doc))
    r = subprocess.run(
        [
            "bash",
            str(REPO / "benchmarks" / "attribution_check.sh"),
            str(spec),
            str(tmp_path / "o"),
            "4",
            "5,60",
        ],
        env={**_env(), "N": "400"},
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert r.returncode != 0 and "needs a saturating load (arrival: saturate)" in r.stderr
    assert not (tmp_path / "o" / "runs").exists()  # refused before any server started
