"""Campaign mode `measurement.shared_server` in planning and in the run guard (plan/shared.py,
plan/runguard.py); the measured path end to end is tests/test_pipeline_shared_e2e.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from jouleflow.plan.grid import GridError
from jouleflow.plan.runguard import StaleRunError, decide
from test_grid import grid_of

REPO = Path(__file__).resolve().parents[1]
SHARED = {"server_args": [], "env": {}, "shared_server": True, "cudagraph_max_capture": 512}
TWO_SWEEPS = [
    {
        "models": ["org/small"],
        "tasks": ["chat"],
        "gpus": ["H100"],
        "parallelism": ["tp1"],
        "batch_sizes": [8, 16, 64],
    },
    {
        "models": ["org/small"],
        "tasks": ["chat"],
        "gpus": ["B200"],
        "parallelism": ["tp1"],
        "batch_sizes": [32],
    },
]


def test_each_group_is_one_shared_server_sized_for_its_largest_batch():
    grid = grid_of(measurement=SHARED, sweeps=TWO_SWEEPS)
    assert {name: [p.batch_size for p in members] for name, members in grid.shared.items()} == {
        "chat/org--small/H100/tp1": [8, 16, 64],
        "chat/org--small/B200/tp1": [32],
    }
    for point in grid.points:
        spec = grid.spec(point)
        assert spec["server_max_num_seqs"] == (64 if point.gpu == "H100" else 32)
        assert spec.get("after") is None  # the group's job finds the largest that fits itself
        assert grid.identity(point)["server_max_num_seqs"] == spec["server_max_num_seqs"]


def test_dedicated_points_keep_their_chain_and_no_server_size():
    grid = grid_of(measurement={"server_args": [], "env": {}}, sweeps=TWO_SWEEPS[:1])
    assert grid.shared == {}
    specs = {p.batch_size: grid.spec(p) for p in grid.points}
    assert "server_max_num_seqs" not in specs[16]
    assert specs[16]["after"] == "results/runs/chat/org--small/H100/tp1/8"


def test_the_mode_needs_a_fixed_capture_range():
    with pytest.raises(
        GridError, match=r"^measurement\.cudagraph_max_capture: must be set with measurement\.shared_server"
    ):
        grid_of(measurement={**SHARED, "cudagraph_max_capture": None})


def test_the_mode_leaves_other_engines_one_server_per_point():
    models = {"org/small": {"total_params_b": 8, "engine": "transformers"}}
    grid = grid_of(measurement=SHARED, models=models)
    assert grid.shared == {} and "server_max_num_seqs" not in grid.spec(grid.points[0])


def _finished(tmp_path: Path, spec: dict, server_max_num_seqs: int | None) -> Path:
    """A finished run (recorded by the guard's own code path) whose config has this server size."""
    from jouleflow.plan.runguard import write_skipped_infeasible

    recorded = {**spec, "server_max_num_seqs": server_max_num_seqs}
    return write_skipped_infeasible(recorded, tmp_path / f"run-{server_max_num_seqs}", "smaller", "x")


def test_the_guard_tells_shared_from_dedicated_but_not_one_server_size_from_another(tmp_path):
    grid = grid_of(measurement=SHARED, sweeps=TWO_SWEEPS[:1])
    spec = grid.spec(grid.points[0])  # asks for a shared server of 64
    assert decide(spec, _finished(tmp_path, spec, 16), "measure").action == "keep"
    with pytest.raises(StaleRunError, match="server_max_num_seqs: run has None, config asks 64"):
        decide(spec, _finished(tmp_path, spec, None), "measure")


def test_measure_shared_refuses_points_of_two_groups(tmp_path):
    grid = grid_of(measurement=SHARED, sweeps=TWO_SWEEPS)
    args = []
    for point in grid.points[:1] + grid.points[-1:]:
        path = tmp_path / f"{point.gpu}-{point.batch_size}.json"
        path.write_text(json.dumps(grid.spec(point)))
        args += ["--point", str(path), str(tmp_path / "runs" / point.key), str(tmp_path / "f.jsonl")]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "jouleflow",
            "campaign",
            "measure-shared",
            "--work-dir",
            str(tmp_path / "w"),
            *args,
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "workflow"), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 2
    assert "gpu is 'B200', the group's first point has 'H100'" in r.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "w").exists()
