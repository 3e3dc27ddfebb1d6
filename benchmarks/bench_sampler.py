"""Power sampler overhead: process CPU time per second of sampling, achieved rate, read latency.

    python benchmarks/bench_sampler.py --fake --gpus 1      # no GPU needed (test-only fake NVML)
    python benchmarks/bench_sampler.py --fake --gpus 8
    python benchmarks/bench_sampler.py                      # the real GPUs this process can see

On real GPUs it also reports how often the energy counter changes value (its update period
bounds how finely a window's energy can be resolved) and how far the sampler's interpolated
session energy is from a ZeusMonitor window over the same interval. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))


def install_fake(gpus: int) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from fakegpu.fake_nvml import FakeGPUConfig, install

    install(FakeGPUConfig(count=gpus, power_w="300"))


def interpolate(series: list[dict], t: float) -> float:
    for a, b in zip(series, series[1:], strict=False):
        if a["t"] <= t <= b["t"]:
            return a["energy_j"] + (b["energy_j"] - a["energy_j"]) * (t - a["t"]) / (b["t"] - a["t"])
    raise ValueError(f"t={t} outside the record")


def measure_rate(hz: float, seconds: float, cross_check: bool) -> None:
    from jouleflow.measure.power import PowerSampler, SessionEnergyCheck

    sampler = PowerSampler(period_s=1.0 / hz)
    check = None
    if cross_check:
        try:
            check = SessionEnergyCheck(sampler.gpu_indices)
        except ImportError as exc:  # zeus.monitor needs scikit-learn, which GPU hosts may lack
            print(f"(ZeusMonitor cross-check skipped: {exc})")
    idle_cpu0, idle_t0 = time.process_time(), time.perf_counter()
    time.sleep(min(seconds, 2.0))
    idle = (time.process_time() - idle_cpu0) / (time.perf_counter() - idle_t0)

    cpu0, t0 = time.process_time(), time.perf_counter()
    sampler.start()
    if check:
        time.sleep(0.5)
        check.begin()
    time.sleep(seconds)
    result = check.end() if check else None
    if check:
        time.sleep(0.5)
    rows = sampler.stop()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0

    n_gpus = len(sampler.gpu_indices)
    read_ms = sorted(2e3 * r["t_err_s"] for r in rows)
    print(
        f"{hz:6.0f} Hz x {n_gpus} GPU(s): CPU {100 * cpu / wall:6.3f}% of one core "
        f"(idle process {100 * idle:.3f}%), {1e6 * cpu / len(rows):6.1f} us CPU per GPU sample, "
        f"achieved {len(rows) / n_gpus / wall:6.1f} Hz per GPU, counter read "
        f"median {statistics.median(read_ms):.3f} ms / max {read_ms[-1]:.3f} ms"
    )
    if result is not None:
        for gpu in sampler.gpu_indices:
            series = [r for r in rows if r["gpu"] == gpu]
            sampled = interpolate(series, result["t_end"]) - interpolate(series, result["t_begin"])
            zeus = result["energy_j"][gpu]
            print(
                f"        GPU {gpu}: sampler window {sampled:.3f} J vs ZeusMonitor {zeus:.3f} J "
                f"(diff {sampled - zeus:+.3f} J over {result['time_s']:.2f} s)"
            )


def counter_update_period(seconds: float = 2.0) -> None:
    """Poll the counter as fast as possible and report the spacing of its value changes."""
    from zeus.device import get_gpus

    gpus = get_gpus()
    for gpu in range(len(gpus)):
        changes, last, reads = [], None, 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            value = gpus.get_total_energy_consumption(gpu)
            reads += 1
            if value != last:
                changes.append(time.perf_counter())
                last = value
        gaps = [b - a for a, b in zip(changes[1:], changes[2:], strict=False)]
        if gaps:
            print(
                f"GPU {gpu}: energy counter changed every {1e3 * statistics.median(gaps):.2f} ms (median), "
                f"{reads / seconds:.0f} reads/s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fake", action="store_true", help="use the test-only fake GPU (no hardware)")
    parser.add_argument("--gpus", type=int, default=1, help="fake GPU count (with --fake)")
    parser.add_argument("--rates", default="10,100", help="sampling rates in Hz, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="sampling time per rate")
    args = parser.parse_args()
    if args.fake:
        install_fake(args.gpus)
    from jouleflow.measure.power import gpu_inventory

    names = sorted({g["name"] for g in gpu_inventory()})
    print(f"GPUs: {names} ({'fake' if args.fake else 'real'}), python {sys.version.split()[0]}")
    for hz in (float(r) for r in args.rates.split(",")):
        measure_rate(hz, args.seconds, cross_check=True)
    if not args.fake:
        counter_update_period()


if __name__ == "__main__":
    main()
