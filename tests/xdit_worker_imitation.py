"""TEST ONLY: imitates jouleflow's xDiT worker (jouleflow.measure.engines.xdit_worker) without torch or a GPU.

The measuring parent launches it through `launcher` in place of `torchrun --module <worker>`:

    python tests/xdit_worker_imitation.py --nproc={nproc} <xfuser options> --jouleflow_spec=FILE

It reads the same spec, starts nproc-1 idle "rank" processes, each in a session of its own (as
torchrun does), sleeps instead of generating, and writes the worker's output protocol (JSON lines, see
jouleflow.measure.engines.xdit_protocol) with its own plain `json` code, so a test checks the parent
against the protocol as documented rather than against the product's own writer.

Behaviour, from environment variables:
  IMITATION_LOAD_S      seconds "loading" (default 0.05)
  IMITATION_BATCH_S     seconds per batch (default 0.05)
  IMITATION_EXIT_AFTER  exit with code 3 after this many timed batches (a crash, no error event)
  IMITATION_OOM_AT      "load", "warmup" or "timed:K": print a CUDA out-of-memory traceback there
                        and exit 1; with IMITATION_OOM_SILENT=1 no event says so (another rank's
                        failure: only the log shows it)
  IMITATION_HANG        "1": hang after the first timed batch starts (for the timeout path)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

OOM_TEXT = (
    "Traceback (most recent call last):\n"
    '  File "xfuser/model_executor/pipelines/base_pipeline.py", line 210, in __call__\n'
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total "
    "capacity of 79.19 GiB of which 1.02 GiB is free.\n"
)


def parse(argv: list[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            opts[key] = value if value else "true"
    return opts


def main() -> int:
    opts = parse(sys.argv[1:])
    with open(opts["jouleflow_spec"]) as f:
        spec = json.load(f)
    nproc = int(opts.get("nproc", "1"))
    # torchrun starts each rank in a session of its own (start_new_session): out of our process group.
    ranks = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], start_new_session=True)
        for _ in range(nproc - 1)
    ]
    events = open(spec["events_path"], "a")  # noqa: SIM115 - open for the whole run, like the worker's
    silent = os.environ.get("IMITATION_OOM_SILENT") == "1"

    def emit(event: str, **fields: object) -> None:
        events.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
        events.flush()

    def oom(phase: str, index: int | None) -> int:
        sys.stderr.write(OOM_TEXT)
        sys.stderr.flush()
        if not silent:
            emit("error", phase=phase, batch_index=index, error=OOM_TEXT.strip().splitlines()[-1], oom=True)
        return 1

    emit("start", world_size=nproc, argv=sys.argv[1:], rank_pids=[p.pid for p in ranks])
    oom_at = os.environ.get("IMITATION_OOM_AT", "")
    time.sleep(float(os.environ.get("IMITATION_LOAD_S", "0.05")))
    if oom_at == "load":
        return oom("load", None)
    emit("loaded", load_s=0.05, versions={"xfuser": "imitation"}, parallel={"world_size": nproc})
    batch_s = float(os.environ.get("IMITATION_BATCH_S", "0.05"))
    exit_after = os.environ.get("IMITATION_EXIT_AFTER")
    batches = spec["batches"]
    plan = [("warmup", i, batches[i % len(batches)]) for i in range(spec["warmup_batches"])]
    plan += [("timed", i, b) for i, b in enumerate(batches)]
    for phase, index, prompts in plan:
        if phase == "timed" and exit_after is not None and index == int(exit_after):
            print(f"imitation: crashing after {index} timed batches", file=sys.stderr, flush=True)
            return 3
        t_start = time.time()
        emit("batch_start", phase=phase, batch_index=index, batch_size=len(prompts), t_start=t_start)
        if oom_at == phase or oom_at == f"{phase}:{index}":
            return oom(phase, index)
        if phase == "timed" and os.environ.get("IMITATION_HANG") == "1":
            time.sleep(3600)
        time.sleep(batch_s)
        emit(
            "batch", phase=phase, batch_index=index, batch_size=len(prompts), t_start=t_start,
            t_end=time.time(), ok=True, error=None, peak_memory_gib=1.5,
        )  # fmt: skip
    emit("done")
    for p in ranks:
        p.terminate()
        p.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
