"""`jouleflow measure llm`: run one grid point (engine + load + power) into a run directory.

Every job-spec key has a flag; `--config job.yaml|json` gives a whole spec, flags override it.
Heavy modules are imported in the handler only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from jouleflow.cli.measure_args import (
    CONTAINER_FLAGS,
    OUT_HELP,
    duration,
    key_value,
    merge_job_spec,
    print_run_status,
    required_out,
)


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string


# flag dest -> (job-spec section or None, key)
_SYNTHETIC = {
    "output_lengths": "output_lengths",
    "histogram_gpu": "histogram_gpu",
    "histogram_num_gpus": "histogram_num_gpus",
    "histogram_max_num_seqs": "histogram_max_num_seqs",
    "output_len": "fixed_output_len",
    "prompt_len": "prompt_len",
    "seed": "seed",
}
# Besides measure_args.NOT_CONFIG: flags handled after the merge, or not part of the job spec.
_NOT_CONFIG = {
    "no_progress",
    "model_cache",
    "sampling_kv",
    "temperature",
    "top_p",
    "extra_body_json",
}
_SATURATE = ("target_window_s", "target_ci", "max_load_s", "interval_s", "headroom", "warmup_response_times")
_SECTIONS = {
    **{dest: ("synthetic", key) for dest, key in _SYNTHETIC.items()},
    **{dest: ("saturate", dest) for dest in _SATURATE},
    **{dest: ("container", key) for dest, key in CONTAINER_FLAGS.items()},
}


def register(subparsers: Any) -> None:
    measure = subparsers.add_parser("measure", help="measure one configuration")
    kinds = measure.add_subparsers(dest="measure_kind", required=True, metavar="KIND")
    p = kinds.add_parser(
        "llm",
        help="one LLM serving grid point (vLLM or transformers serve)",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--config", help="job spec (YAML or JSON) with the keys below; flags override it")
    p.add_argument("-o", "--out", help=OUT_HELP)
    g = p.add_argument_group("model and engine")
    g.add_argument("--model", help="HF model id, e.g. meta-llama/Llama-3.1-8B-Instruct")
    g.add_argument(
        "--model-path", help="local model dir (default: the HF id; for dummy: built from resources)"
    )
    g.add_argument("--task", help="task label (default lm-arena-chat)")
    g.add_argument("--engine", choices=["vllm", "transformers"])
    g.add_argument(
        "--launcher", help="engine launch command, e.g. 'python3 -m vllm.entrypoints.cli.main serve'"
    )
    g.add_argument("--device", help="transformers engine device (cpu, cuda:0)")
    g.add_argument("--gpu", help="GPU type label (default: from the GPU name)")
    g.add_argument("--num-gpus", type=int)
    g.add_argument("--batch-size", "--max-num-seqs", dest="batch_size", type=int, help="max_num_seqs B")
    g.add_argument("--tensor-parallel", "--tp", dest="tensor_parallel", type=int)
    g.add_argument("--pipeline-parallel", "--pp", dest="pipeline_parallel", type=int)
    g.add_argument("--data-parallel", "--dp", dest="data_parallel", type=int)
    g.add_argument("--expert-parallel", "--ep", dest="expert_parallel", action=argparse.BooleanOptionalAction)
    g.add_argument("--precision", help="label recorded with the run (bf16, fp8)")
    g.add_argument("--dtype")
    g.add_argument("--quantization")
    g.add_argument("--load-format", choices=["real", "dummy"])
    g.add_argument("--max-model-len", type=int)
    g.add_argument("--max-num-batched-tokens", type=int)
    g.add_argument("--async-scheduling", action=argparse.BooleanOptionalAction)
    g.add_argument("--gpu-memory-utilization", type=float)
    g.add_argument(
        "--cudagraph-max-capture", type=int, help="vLLM max_cudagraph_capture_size (default: vLLM's)"
    )
    g.add_argument(
        "--engine-cache-dir",
        help="persistent compile caches, kept across runs (<dir>/<host>/<engine>-<version>)",
    )
    g.add_argument(
        "--batch-limit-file", help="vLLM: a file whose integer caps the running requests of the live server"
    )
    g.add_argument(
        "--server-arg",
        dest="server_args",
        action="append",
        help="one extra server argument (repeat; write --server-arg=--enforce-eager)",
    )
    g.add_argument(
        "--server-args", dest="server_args_str", help="extra server arguments as one shell-quoted string"
    )
    g.add_argument(
        "--env", dest="env_kv", type=key_value, action="append", help="KEY=VALUE for the server (repeat)"
    )
    g.add_argument("--container-runtime", choices=["apptainer", "singularity", "docker"])
    g.add_argument("--container-image")
    g.add_argument("--container-bind", action="append")
    g.add_argument("--container-arg", action="append")
    g.add_argument("--host")
    g.add_argument("--port", type=int, help="server port (default: a free one)")
    g.add_argument("--health-timeout", dest="health_timeout_s", type=duration)
    r = p.add_argument_group("requests and load")
    r.add_argument("--num-requests", type=int)
    r.add_argument("--request-set", help="Parquet request set (default: synthetic)")
    r.add_argument("--output-lengths", help="ML.ENERGY v3 models/*.json with output-length histograms")
    r.add_argument("--histogram-gpu")
    r.add_argument("--histogram-num-gpus", type=int)
    r.add_argument("--histogram-max-num-seqs", type=int)
    r.add_argument("--output-len", type=int, help="fixed output length instead of a histogram")
    r.add_argument("--prompt-len", help="fixed:N | uniform:A,B | normal:MEAN,STD (words)")
    r.add_argument("--seed", type=int, help="synthetic request-set seed")
    r.add_argument("--endpoint", choices=["chat", "completions"])
    r.add_argument("--temperature", type=float)
    r.add_argument("--top-p", type=float)
    r.add_argument(
        "--sampling",
        dest="sampling_kv",
        type=key_value,
        action="append",
        help="KEY=JSON_VALUE sampling parameter (repeat)",
    )
    r.add_argument("--extra-body", dest="extra_body_json", help="JSON object merged into every request body")
    r.add_argument("--arrival", choices=["burst", "concurrency", "poisson", "saturate"])
    r.add_argument("--target-window", dest="target_window_s", type=duration, help="saturate: steady window")
    r.add_argument("--target-ci", type=float, help="saturate: J/token 95%% CI half-width / mean to stop at")
    r.add_argument("--max-load", dest="max_load_s", type=duration, help="saturate: stop here anyway")
    r.add_argument("--ci-interval", dest="interval_s", type=duration, help="saturate: batch-means interval")
    r.add_argument(
        "--headroom",
        type=int,
        help="saturate: requests waiting beyond B, kept fixed (default: max(4, B // 8), raised while the engine runs short)",
    )
    r.add_argument(
        "--warmup",
        dest="warmup_response_times",
        type=float,
        help="saturate: the window begins this many mean response times after the batch first filled (default 1; 0 = at once)",
    )
    r.add_argument("--max-concurrency", type=int)
    r.add_argument("--rate", type=float, help="requests/s (poisson)")
    r.add_argument("--arrival-seed", type=int)
    r.add_argument("--request-timeout", dest="request_timeout_s", type=duration)
    r.add_argument("--chunk-timeout", dest="chunk_timeout_s", type=duration)
    m = p.add_argument_group("measurement")
    m.add_argument("--power-period", dest="power_period_s", type=duration)
    m.add_argument("--metrics-period", dest="metrics_period_s", type=duration)
    m.add_argument(
        "--latent-period",
        dest="latent_period_s",
        type=duration,
        help="GPU utilization/clocks (500ms; 0s = off)",
    )
    m.add_argument(
        "--idle-baseline",
        dest="idle_baseline_s",
        type=duration,
        help="idle power before the load (5s; 0s = skip)",
    )
    m.add_argument("--no-energy", action="store_true", help="no power sensor (CPU engine): no energy numbers")
    m.add_argument("--no-progress", action="store_true", help="no live display")
    m.add_argument(
        "--model-cache", help="where dummy model dirs are built (default ~/.cache/jouleflow/models)"
    )
    m.add_argument("--print-config", action="store_true", help="print the effective config and exit")
    p.set_defaults(func=run_measure_llm)

    from jouleflow.cli.measure_diffusion import register_diffusion

    register_diffusion(kinds)

    from jouleflow.cli.measure_sweep import register_sweep

    register_sweep(kinds)


def job_dict(args: argparse.Namespace) -> dict[str, Any]:
    """Merge the job spec file (if any) and the flags into one job-spec dict."""
    given = vars(args)
    spec = merge_job_spec(given, skip=_NOT_CONFIG, sections=_SECTIONS, extra_args="server_args")
    sampling_flags = {k: given[k] for k in ("temperature", "top_p") if k in given}
    sampling_flags.update({k: json_value(v) for k, v in given.get("sampling_kv", [])})
    if sampling_flags:
        from jouleflow.measure.jobconfig import LLMJobConfig

        default = LLMJobConfig.__dataclass_fields__["sampling"].default_factory()  # type: ignore[misc]
        spec["sampling"] = {**(spec.get("sampling", default)), **sampling_flags}
    if "extra_body_json" in given:
        try:
            extra = json.loads(given["extra_body_json"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"--extra-body: not JSON ({exc})") from exc
        if not isinstance(extra, dict):
            raise ValueError("--extra-body: must be a JSON object")
        spec["extra_body"] = {**(spec.get("extra_body") or {}), **extra}
    return spec


def run_measure_llm(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jouleflow.cli import CLIError
    from jouleflow.measure.jobconfig import ConfigError, config_from_dict

    try:
        spec = job_dict(args)
        cfg = config_from_dict(spec, source=getattr(args, "config", "command line"))
    except ConfigError as exc:
        raise CLIError(str(exc)) from exc
    if getattr(args, "print_config", False):
        json.dump(cfg.to_dict(), sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    out = required_out(args)
    from jouleflow.measure.gpualloc import GpuAllocationError
    from jouleflow.measure.session import SessionError, SessionFailed, run_llm_session
    from jouleflow.traces import RunExistsError

    cache = Path(args.model_cache) if getattr(args, "model_cache", None) else None
    try:
        run_dir = run_llm_session(
            cfg, out, display=not getattr(args, "no_progress", False), model_cache=cache
        )
    except (SessionError, GpuAllocationError, RunExistsError) as exc:
        raise CLIError(str(exc)) from exc
    except SessionFailed as exc:
        print(f"jouleflow measure llm: run failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        kept = getattr(exc, "kept", None)
        what = f"what was gathered is kept as a failed run in {kept}" if kept else "nothing written"
        print(f"jouleflow measure llm: {exc or 'interrupted'}; {what}", file=sys.stderr)
        import signal

        return 143 if getattr(exc, "signum", signal.SIGINT) == signal.SIGTERM else 130
    print_run_status(run_dir)
    return 0
