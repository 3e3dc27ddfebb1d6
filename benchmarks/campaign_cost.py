"""What a campaign costs in GPU time, and what each protocol measured: a table from run directories.

For every run directory given (one per grid point, each with its `summary.json` from
`jouleflow energy`), the GPU-seconds the point held its GPUs, split into

- start-up: preparing, starting power sampling and the engine server (for points that shared one
  server, the server's start-up is divided evenly among them and the time between their loads,
  switching the batch limit, is added to each);
- load before the steady window (ramp-up), the steady window itself, and the tail (from the end of
  the window to the end of the load: ML.ENERGY's burst protocol spends it draining the last requests);
- teardown;

and per point J/token (with its batch-means uncertainty when the summary has it), tokens/s and W.
With `--baseline`, each point is compared with the baseline protocol's point of the same batch size.

    python benchmarks/campaign_cost.py --protocol standard=RUNS_DIR_A --protocol reuse=RUNS_DIR_B \
        [--baseline standard] [--json out.json]

RUNS_DIR is searched recursively for `run.json`; the summary is read from `summary.json` beside it
or from `--energy-root` (the workflow's `results/<...>/energy/<run>/summary.json` layout).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))


@dataclass
class PointCost:
    protocol: str
    run_dir: str
    batch_size: int
    valid: bool
    startup_s: float
    ramp_s: float
    window_s: float
    tail_s: float
    teardown_s: float
    num_gpus: int
    j_per_token: float | None
    j_per_token_ci: float | None  # relative 95% half-width (batch means), when recorded
    tokens_per_s: float | None
    power_w: float | None
    shared_server: bool

    @property
    def gpu_s(self) -> float:
        wall = self.startup_s + self.ramp_s + self.window_s + self.tail_s + self.teardown_s
        return wall * self.num_gpus


def _span(phases: dict[str, list[float]], name: str) -> float:
    t = phases.get(name)
    return float(t[1] - t[0]) if t else 0.0


def _summary_for(run_dir: Path, energy_root: Path | None, runs_root: Path) -> dict[str, Any] | None:
    beside = run_dir / "summary.json"
    if beside.is_file():
        return json.loads(beside.read_text())
    if energy_root is not None:
        cand = energy_root / run_dir.relative_to(runs_root) / "summary.json"
        if cand.is_file():
            return json.loads(cand.read_text())
    return None


def point_cost(protocol: str, run_dir: Path, summary: dict[str, Any] | None) -> PointCost:
    run = json.loads((run_dir / "run.json").read_text())
    prov = run.get("provenance") or {}
    phases = prov.get("phases") or {}
    shared = prov.get("shared_engine") or None
    startup = _span(phases, "prepare") + _span(phases, "power_start") + _span(phases, "server_start")
    if shared:
        startup += float(shared.get("startup_share_s") or 0.0) + float(shared.get("switch_s") or 0.0)
    load = phases.get("load")
    s = summary or {}
    ramp = window = tail = 0.0
    if load:
        window = float(s.get("steady_duration_s") or 0.0)
        if s.get("steady_start") and s.get("steady_end"):
            ramp = max(0.0, float(s["steady_start"]) - load[0])
            tail = max(0.0, load[1] - float(s["steady_end"]))
        else:  # no window: the whole load is overhead
            ramp = load[1] - load[0]
    gpus = prov.get("allocated_device_ids") or prov.get("gpus") or [None]
    cfg = run.get("config") or {}
    return PointCost(
        protocol=protocol,
        run_dir=str(run_dir),
        batch_size=int(cfg.get("batch_size") or s.get("batch_size") or 0),
        valid=bool(s.get("valid")),
        startup_s=startup,
        ramp_s=ramp,
        window_s=window,
        tail_s=tail,
        teardown_s=_span(phases, "teardown"),
        num_gpus=max(1, len(gpus)),
        j_per_token=s.get("energy_per_token_j"),
        j_per_token_ci=s.get("energy_per_token_ci_rel"),
        tokens_per_s=s.get("tokens_per_s"),
        power_w=s.get("mean_power_w"),
        shared_server=bool(shared),
    )


def collect(protocol: str, root: Path, energy_root: Path | None) -> list[PointCost]:
    points: list[PointCost] = []
    if not root.is_dir():
        print(f"{root}: not there (protocol {protocol!r} skipped)", file=sys.stderr)
        return points
    for run_json in sorted(root.rglob("run.json")):
        run_dir = run_json.parent
        if ".failed-" in run_dir.name:
            continue
        points.append(point_cost(protocol, run_dir, _summary_for(run_dir, energy_root, root)))
    return sorted(points, key=lambda p: p.batch_size)


def _pct(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b:
        return "—"
    return f"{100 * (a / b - 1):+.1f}%"


def _f(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def table(points: list[PointCost], baseline: str | None) -> str:
    base = {p.batch_size: p for p in points if p.protocol == baseline}
    head = (
        "| protocol | B | valid | start-up s | ramp s | window s | tail s | teardown s | GPU-s |"
        " J/token | ±CI % | tokens/s | W |"
    )
    if baseline:
        head += f" ΔJ/token vs {baseline} | Δtokens/s | ΔW |"
    lines = [head, "|" + " ---: |" * (head.count("|") - 1)]
    for p in points:
        row = (
            f"| {p.protocol} | {p.batch_size} | {'yes' if p.valid else 'no'} | {p.startup_s:.1f} | {p.ramp_s:.1f}"
            f" | {p.window_s:.1f} | {p.tail_s:.1f} | {p.teardown_s:.1f} | {p.gpu_s:.1f}"
            f" | {_f(p.j_per_token, '.4f')} | {_f(None if p.j_per_token_ci is None else 100 * p.j_per_token_ci, '.1f')}"
            f" | {_f(p.tokens_per_s, ',.0f')} | {_f(p.power_w, '.0f')} |"
        )
        if baseline:
            b = base.get(p.batch_size)
            row += (
                f" {_pct(p.j_per_token, b and b.j_per_token)} | {_pct(p.tokens_per_s, b and b.tokens_per_s)}"
                f" | {_pct(p.power_w, b and b.power_w)} |"
            )
        lines.append(row)
    return "\n".join(lines)


def totals(points: list[PointCost]) -> str:
    out = ["| protocol | points | valid | GPU-s | GPU-s per valid point | start-up share | tail share |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for proto in dict.fromkeys(p.protocol for p in points):
        ps = [p for p in points if p.protocol == proto]
        gpu = sum(p.gpu_s for p in ps)
        valid = sum(p.valid for p in ps)
        start = sum(p.startup_s * p.num_gpus for p in ps)
        tail = sum(p.tail_s * p.num_gpus for p in ps)
        per_valid = f"{gpu / valid:.1f}" if valid else "—"
        out.append(
            f"| {proto} | {len(ps)} | {valid} | {gpu:.0f} | {per_valid} | {100 * start / gpu:.0f}% | {100 * tail / gpu:.0f}% |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", action="append", required=True, metavar="NAME=RUNS_DIR")
    ap.add_argument("--energy-root", action="append", default=[], metavar="NAME=ENERGY_DIR")
    ap.add_argument("--baseline", help="protocol to compare the others with, point by point")
    ap.add_argument("--json", type=Path, help="also write every point's figures here")
    args = ap.parse_args(argv)
    energy = dict(e.split("=", 1) for e in args.energy_root)
    points: list[PointCost] = []
    for item in args.protocol:
        name, _, root = item.partition("=")
        if not root:
            ap.error(f"--protocol {item!r}: expected NAME=RUNS_DIR")
        er = energy.get(name)
        points += collect(name, Path(root), Path(er) if er else None)
    if not points:
        ap.error("no run.json under any protocol's RUNS_DIR")
    if args.baseline and args.baseline not in {p.protocol for p in points}:
        ap.error(f"--baseline {args.baseline!r} is none of the protocols given")
    print(table(points, args.baseline))
    print()
    print(totals(points))
    if args.json:
        args.json.write_text(json.dumps([asdict(p) | {"gpu_s": p.gpu_s} for p in points], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
