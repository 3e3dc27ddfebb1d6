"""Engine settings for faster, comparable campaigns: persistent compile caches, a fixed CUDA-graph
capture range, and an engine-side batch limit (command construction, the planner's specs, the CLI's
errors, vLLM's log, the limit file)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jouleflow.measure import engine_cache
from jouleflow.measure.engines import vllm
from jouleflow.measure.engines.vllm_log import effective_settings, read_effective_settings
from jouleflow.measure.jobconfig import ConfigError, config_from_dict
from jouleflow.measure.session_setup import engine_spec
from jouleflow.plan import gridtable
from jouleflow.plan.config import validate_config
from jouleflow.plan.grid import build_grid

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema" / "config.schema.yaml"
REFERENCE_LOG = (
    REPO / "resources/reference/runs/lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/H100/tp1/64/server.log"
)


def cfg(**kw):
    return config_from_dict({"model": "org/m", "batch_size": 64, "synthetic": {"fixed_output_len": 8}, **kw})


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# --- CUDA-graph capture sizes --------------------------------------------------------------------


def test_capture_size_is_appended_as_a_compilation_config():
    argv = vllm.build_command(cfg(cudagraph_max_capture=512, server_args=["--enforce-eager"]), 8000)
    assert argv[-3:] == ["--enforce-eager", "--compilation-config", '{"max_cudagraph_capture_size": 512}']
    assert "--compilation-config" not in vllm.build_command(cfg(), 8000)  # null: vLLM's default


@pytest.mark.parametrize(
    "user, merged",
    [
        (["--compilation-config", '{"cudagraph_mode": "PIECEWISE"}'], ["--compilation-config", '{"cudagraph_mode":"PIECEWISE","max_cudagraph_capture_size":256}']),
        (['-cc={"mode": 3}'], ['-cc={"mode":3,"max_cudagraph_capture_size":256}']),
        (["-cc.cudagraph_mode=PIECEWISE"], ["-cc.cudagraph_mode=PIECEWISE", "--compilation-config", '{"max_cudagraph_capture_size": 256}']),
    ],
)  # fmt: skip
def test_capture_size_merges_into_the_users_compilation_config(user, merged):
    argv = vllm.build_command(cfg(cudagraph_max_capture=256, server_args=["--x", *user]), 8000)
    assert argv[argv.index("--x") + 1 :] == merged


@pytest.mark.parametrize(
    "user, message",
    [
        (["--compilation-config", '{"max_cudagraph_capture_size": 128}'], "sets max_cudagraph_capture_size too"),
        (['--compilation-config={"cudagraph_capture_sizes": [1, 2]}'], "sets cudagraph_capture_sizes too"),
        (["-cc.max_cudagraph_capture_size=64"], "set -cc.max_cudagraph_capture_size too"),
        (["--compilation-config", "3"], "not a JSON object"),
        (["--compilation-config"], "no value"),
    ],
)  # fmt: skip
def test_capture_size_set_twice_is_refused(user, message):
    c = cfg(cudagraph_max_capture=512, server_args=user)
    with pytest.raises(ConfigError, match=f"cudagraph_max_capture: .*{message}"):
        vllm.build_command(c, 8000)
    with pytest.raises(ConfigError, match=message):  # before a launch: validate() runs first
        vllm.validate(c)


def test_engine_settings_are_checked_in_the_job_config():
    with pytest.raises(ConfigError, match="cudagraph_max_capture: must be a positive integer"):
        cfg(cudagraph_max_capture=0)
    with pytest.raises(ConfigError, match="cudagraph_max_capture: vLLM only"):
        cfg(cudagraph_max_capture=64, engine="transformers")
    with pytest.raises(ConfigError, match="batch_limit_file: vLLM only"):
        cfg(batch_limit_file="limit", engine="transformers")
    with pytest.raises(ConfigError, match="engine_cache_dir: env sets VLLM_CACHE_ROOT too"):
        cfg(engine_cache_dir="/c", env={"VLLM_CACHE_ROOT": "/x"})


# --- persistent caches ---------------------------------------------------------------------------


def test_cache_dir_is_per_host_and_engine_version_and_knows_when_it_is_warm(tmp_path):
    cache = engine_cache.prepare(tmp_path / "caches", "vllm", "0.26.0", host="node1")
    assert cache.path == tmp_path / "caches" / "node1" / "vllm-0.26.0" and cache.path.is_dir()
    assert cache.provenance() == {"dir": str(cache.path), "warm": False}
    (cache.path / "vllm").mkdir()  # what an engine leaves there
    assert engine_cache.prepare(tmp_path / "caches", "vllm", "0.26.0", host="node1").warm
    # another version of the engine starts cold, beside it
    other = engine_cache.prepare(tmp_path / "caches", "vllm", "0.27.0", host="node1")
    assert not other.warm and other.path.parent == cache.path.parent
    assert engine_cache.cache_path(tmp_path, "vllm", None, "h").name == "vllm-unknown"


def test_cache_env_reaches_the_server_and_the_container(tmp_path):
    cache = engine_cache.prepare(tmp_path, "vllm", "0.26.0", host="h")
    c = cfg(engine_cache_dir=str(tmp_path), env={"A": "1"})
    spec = engine_spec(c, 8000, cache=cache)
    assert spec.env == {
        "A": "1",
        "VLLM_CACHE_ROOT": str(cache.path / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(cache.path / "inductor"),
        "TRITON_CACHE_DIR": str(cache.path / "triton"),
    }
    assert engine_spec(cfg(env={"A": "1"}), 8000).env == {"A": "1"}  # without: as before
    boxed = cfg(engine_cache_dir=str(tmp_path), container={"runtime": "apptainer", "image": "i.sif"})
    argv = engine_spec(boxed, 8000, cache=cache).argv
    assert f"{cache.path}:{cache.path}" in argv and f"VLLM_CACHE_ROOT={cache.path / 'vllm'}" in argv
    (tmp_path / "config.json").write_text("{}")
    tf = engine_spec(cfg(engine="transformers", model_path=str(tmp_path)), 8000, cache=cache)
    assert "VLLM_CACHE_ROOT" not in tf.env and tf.env["TRITON_CACHE_DIR"] == str(cache.path / "triton")


def _planned_spec(tmp_path: Path, **measurement) -> Path:
    """The job spec the planner writes for one point (gridtable.sync_job_specs)."""
    (tmp_path / "model").mkdir(parents=True)
    model = {"architectures": ["LlamaForCausalLM"], "num_attention_heads": 4, "num_hidden_layers": 2}
    (tmp_path / "model" / "config.json").write_text(json.dumps(model))
    config = {
        "source": "measure",
        "results_dir": str(tmp_path / "results"),
        "gpus": {"H100": {"memory_gb": 80, "tdp_w": 700}},
        "models": {"org/small": {"total_params_b": 1, "precision": "bf16", "path": str(tmp_path / "model")}},
        "tasks": {"chat": {"request_set": {"kind": "synthetic", "fixed_output_len": 8}}},
        "sweeps": [
            {"models": ["org/small"], "tasks": ["chat"], "gpus": ["H100"], "parallelism": ["tp1"], "batch_sizes": [8]}
        ],
        "measurement": measurement,
    }  # fmt: skip
    grid = build_grid(validate_config(copy.deepcopy(config), SCHEMA), tmp_path)
    assert gridtable.sync_job_specs(grid) == 1
    (point,) = grid.points
    return Path(gridtable.spec_path(grid.config["results_dir"], point))


def test_the_planner_writes_the_settings_only_when_set(tmp_path):
    plain = json.loads(_planned_spec(tmp_path / "a").read_text())
    assert "engine_cache_dir" not in plain and "cudagraph_max_capture" not in plain
    spec = json.loads(
        _planned_spec(tmp_path / "b", engine_cache_dir="caches", cudagraph_max_capture=512).read_text()
    )
    assert (spec["engine_cache_dir"], spec["cudagraph_max_capture"]) == ("caches", 512)
    c = config_from_dict(spec)
    assert _flag(vllm.build_command(c, 1), "--compilation-config") == '{"max_cudagraph_capture_size": 512}'


def test_the_planner_writes_latent_and_idle_settings_only_when_set(tmp_path):
    plain = json.loads(_planned_spec(tmp_path / "a").read_text())
    assert "latent_period_s" not in plain and "idle_baseline_s" not in plain
    c = config_from_dict(plain)
    assert (c.latent_period_s, c.idle_baseline_s) == (0.5, 5.0)  # the measurement's defaults
    spec = json.loads(_planned_spec(tmp_path / "b", latent_period_s=0, idle_baseline_s=10).read_text())
    c = config_from_dict(spec)
    assert (c.latent_period_s, c.idle_baseline_s) == (0, 10)
    with pytest.raises(ConfigError, match="idle_baseline_s: must be >= 0"):
        config_from_dict({**spec, "idle_baseline_s": -1})


def test_unwritable_cache_dir_is_bad_input_before_the_engine_starts(tmp_path):
    """Through the real CLI path with the planner's spec: exit 2, the key and the path named, no run."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    spec = _planned_spec(tmp_path, engine_cache_dir=str(blocker / "caches"))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    r = subprocess.run(
        [sys.executable, "-m", "jouleflow", "measure", "llm", "--config", str(spec), "-o", str(out), "--no-energy"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "engine_cache_dir (measurement.engine_cache_dir)" in r.stderr
    assert f"{blocker}/caches/" in r.stderr and "is not a writable directory" in r.stderr
    assert "Traceback" not in r.stderr and "starting vllm server" not in r.stderr
    assert not out.exists() and not list(tmp_path.glob("run*"))


# --- vLLM's log ----------------------------------------------------------------------------------

# Built from vLLM 0.26's format strings: v1/engine/core.py logs
# "Initializing a V1 LLM engine (v%s) with config: %s" with VllmConfig.__str__ (config/vllm.py:
# "..., enforce_eager={...}, ..., compilation_config={self.compilation_config!r}, kernel_config=...")
# and CompilationConfig.__repr__ is str() of a dict (enums print as <Enum.NAME: value>);
# config/vllm.py logs "Asynchronous scheduling is %s." with "enabled" / "disabled".
CONSTRUCTED_LOG = (
    "(EngineCore pid=7) INFO 01-01 00:00:00 [core.py:116] Initializing a V1 LLM engine (v0.26.0) with "
    "config: model='m', speculative_config=None, tokenizer='m', enforce_eager=False, "
    "structured_outputs_config=StructuredOutputsConfig(backend='auto'), "
    "compilation_config={'mode': <CompilationMode.VLLM_COMPILE: 3>, 'cache_dir': 'a}b', "
    "'splitting_ops': ['vllm::x'], 'cudagraph_mode': <CUDAGraphMode.PIECEWISE: 1>, "
    "'cudagraph_capture_sizes': [1, 2, 4, 8], 'pass_config': {'enable_sp': False}, "
    "'max_cudagraph_capture_size': 8, 'local_cache_dir': None}, kernel_config=KernelConfig(x=1)\n"
    "(EngineCore pid=7) INFO 01-01 00:00:01 [vllm.py:1109] Asynchronous scheduling is disabled.\n"
)


def test_effective_compilation_settings_from_the_format_strings():
    assert effective_settings(CONSTRUCTED_LOG) == {
        "engine_version": "0.26.0",
        "compilation": {
            "mode": "VLLM_COMPILE",
            "cudagraph_mode": "PIECEWISE",
            "max_cudagraph_capture_size": 8,
            "cudagraph_capture_sizes": [1, 2, 4, 8],
            "enforce_eager": False,
        },
        "async_scheduling": False,
    }
    assert effective_settings("test server: mode ok\n") == {
        "engine_version": None,
        "compilation": None,
        "async_scheduling": None,
    }


def test_effective_settings_of_a_real_vllm_log():
    """The bundled H100 run at max_num_seqs 64: vLLM captured graphs up to 2 x 64 only."""
    s = read_effective_settings(REFERENCE_LOG)
    assert s["engine_version"] == "0.26.0" and s["async_scheduling"] is True
    comp = s["compilation"]
    assert comp["max_cudagraph_capture_size"] == 128 and comp["cudagraph_capture_sizes"][-1] == 128
    assert comp["cudagraph_mode"] == "FULL_AND_PIECEWISE" and comp["enforce_eager"] is False
    assert read_effective_settings(REFERENCE_LOG.parent / "missing.log") is None


def test_a_session_records_its_cache_and_the_engines_settings(tmp_path):
    """`jouleflow measure llm` against the test server standing in for vLLM (tests/test_session.py)."""
    from test_session import measure

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_attention_heads": 4, "num_hidden_layers": 2}))
    caches = tmp_path / "caches"
    extra = ("--engine-cache-dir", str(caches), "--cudagraph-max-capture", "32")
    r = measure(tmp_path / "cold", model, *extra)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "cold" / "run.json").read_text())
    prov = doc["provenance"]
    where = caches / prov["host"] / f"vllm-{prov['engine_version'] or 'unknown'}"
    assert prov["engine_cache"] == {"dir": str(where), "warm": False} and where.is_dir()
    # The stand-in logs no config: each setting is null rather than guessed.
    assert prov["engine_settings"] == {"engine_version": None, "compilation": None, "async_scheduling": None}
    assert doc["config"]["cudagraph_max_capture"] == 32 and "server_start" in prov["phases"]
    assert doc["server"]["argv"][-2:] == ["--compilation-config", '{"max_cudagraph_capture_size": 32}']
    (where / "vllm").mkdir()  # what a real engine leaves behind
    assert measure(tmp_path / "warm", model, *extra).returncode == 0
    warm = json.loads((tmp_path / "warm" / "run.json").read_text())
    assert warm["provenance"]["engine_cache"] == {"dir": str(where), "warm": True}
    assert warm["config_hash"] == doc["config_hash"]
    plain = measure(tmp_path / "plain", model)
    assert plain.returncode == 0, plain.stderr
    plain_prov = json.loads((tmp_path / "plain" / "run.json").read_text())["provenance"]
    assert plain_prov["engine_cache"] is None
