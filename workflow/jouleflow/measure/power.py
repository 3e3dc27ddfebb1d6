"""GPU power and energy recording through Zeus's device layer (NVIDIA via NVML, AMD via amdsmi).

`PowerSampler` records, per GPU at ~10 Hz on a background thread: time, instant power, the
cumulative energy counter and temperature (rows of traces.POWER). The counter is the energy
source: the energy of any window is the counter interpolated at both ends (done on the analysis
side, which never imports this module). `SessionEnergyCheck` is a whole-session ZeusMonitor
window, kept only as a cross-check. Without a visible GPU every entry point raises NoGPUError:
energy is never made up.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from array import array
from typing import Any

from jouleflow.measure.gpu_devices import NoGPUError, foreign_processes, gpu_inventory, visible_gpus

__all__ = [
    "NoGPUError",
    "PowerSampler",
    "PowerSamplingError",
    "SessionEnergyCheck",
    "foreign_processes",
    "gpu_inventory",
]

logger = logging.getLogger(__name__)


class PowerSamplingError(RuntimeError):
    """Sampling broke down mid-run (GPU lost, counter reset): the session's energy is not trustworthy."""


class PowerSampler:
    """Background sampler over `zeus.device.get_gpus()`.

    Row columns: t (unix s), gpu (visible index), power_w, energy_j (counter relative to this
    GPU's first sample, so it starts at 0), temp_c, plus energy_counter_j (the raw counter,
    energy since driver load) and t_err_s (half the time the counter read took: the reading
    belongs to some instant within t ± t_err_s).
    """

    def __init__(
        self, gpu_indices: list[int] | None = None, period_s: float = 0.1, max_consecutive_errors: int = 20
    ) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        self._gpus, self.gpu_indices = visible_gpus(gpu_indices)
        for i in self.gpu_indices:
            if not self._gpus.supports_get_total_energy_consumption(i):
                raise NoGPUError(
                    f"GPU {i} ({self._gpus.get_name(i)}) has no energy counter (pre-Volta); "
                    "jouleflow measures energy only from the hardware counter"
                )
        self.period_s = period_s
        self.max_consecutive_errors = max_consecutive_errors
        self.power_source = {i: self._pick_power_source(i) for i in self.gpu_indices}
        self._t, self._gpu, self._power = array("d"), array("i"), array("d")
        self._counter_mj, self._temp, self._t_err = array("q"), array("d"), array("d")
        self._first_mj: dict[int, int] = {}
        self._last_mj: dict[int, int] = {}
        self._latest: dict[int, float] = {}
        self._has_temperature = set(self.gpu_indices)
        self._consecutive_errors = dict.fromkeys(self.gpu_indices, 0)
        self.read_errors = 0
        self._fatal: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = self._stopped_at = math.nan
        self._rows: list[dict] | None = None

    def _pick_power_source(self, i: int) -> str | None:
        """Prefer instant power; some drivers only offer the 1 s average. Only for display/bounds."""
        from zeus.device.exception import ZeusBaseGPUError

        for source, read in (
            ("instant", self._gpus.get_instant_power_usage),
            ("average", self._gpus.get_average_power_usage),
        ):
            try:
                read(i)
                return source
            except ZeusBaseGPUError as exc:
                logger.info("GPU %d: %s power unavailable (%s)", i, source, exc)
        logger.warning(
            "GPU %d: no power reading; power_w will be empty (energy still comes from the counter)", i
        )
        return None

    # --- sampling ---------------------------------------------------------------------------
    def _sample(self, i: int) -> None:
        gpus = self._gpus
        t_a = time.time()
        counter_mj = gpus.get_total_energy_consumption(i)
        t_b = time.time()
        source = self.power_source[i]
        if source == "instant":
            power_w = gpus.get_instant_power_usage(i) / 1000.0
        elif source == "average":
            power_w = gpus.get_average_power_usage(i) / 1000.0
        else:
            power_w = math.nan
        temp_c = math.nan
        if i in self._has_temperature:
            try:
                temp_c = float(gpus.get_gpu_temperature(i))
            except Exception as exc:  # informative only: never lose an energy sample for it
                self._has_temperature.discard(i)
                logger.warning("GPU %d: temperature unavailable (%s); temp_c left empty from now on", i, exc)
        last = self._last_mj.get(i)
        if last is not None and counter_mj < last:
            raise PowerSamplingError(
                f"GPU {i}: energy counter went backwards ({last} -> {counter_mj} mJ); GPU reset or driver reload"
            )
        self._first_mj.setdefault(i, counter_mj)
        self._last_mj[i] = counter_mj
        self._t.append((t_a + t_b) / 2)
        self._t_err.append((t_b - t_a) / 2)
        self._gpu.append(i)
        self._power.append(power_w)
        self._counter_mj.append(counter_mj)
        self._temp.append(temp_c)
        self._latest[i] = power_w

    def _sample_all(self, strict: bool) -> None:
        for i in self.gpu_indices:
            try:
                self._sample(i)
                self._consecutive_errors[i] = 0
            except PowerSamplingError:
                raise
            except Exception as exc:
                if strict:
                    raise
                self.read_errors += 1
                self._consecutive_errors[i] += 1
                logger.warning("GPU %d: sample failed (%s)", i, exc)
                if self._consecutive_errors[i] >= self.max_consecutive_errors:
                    raise PowerSamplingError(
                        f"GPU {i}: {self._consecutive_errors[i]} consecutive failed reads, last: {exc}"
                    ) from exc

    def _run(self) -> None:
        next_at = time.monotonic() + self.period_s
        try:
            while not self._stop.wait(max(0.0, next_at - time.monotonic())):
                self._sample_all(strict=False)
                next_at += self.period_s
                now = time.monotonic()
                if next_at < now:  # fell behind (machine overloaded): skip, do not burst
                    next_at = now + self.period_s
        except BaseException as exc:
            self._fatal = exc
            logger.error("power sampling stopped: %s", exc)

    # --- public API -------------------------------------------------------------------------
    def start(self) -> None:
        """Take the first sample now (errors surface here) and start the background thread."""
        if self._thread is not None:
            raise RuntimeError("PowerSampler.start() called twice")
        self._started_at = time.time()
        self._sample_all(strict=True)
        self._thread = threading.Thread(target=self._run, name="jouleflow-power-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> list[dict]:
        """Stop, take a last sample (so the record covers up to now) and return the rows."""
        if self._thread is None:
            raise RuntimeError("PowerSampler.stop() before start()")
        if self._rows is None:
            self._stop.set()
            self._thread.join()
            if self._fatal is None:
                try:  # a failed last read is counted like any other; only a breakdown is fatal
                    self._sample_all(strict=False)
                except PowerSamplingError as exc:
                    self._fatal = exc
            self._stopped_at = time.time()
            self._rows = self.rows()
        if self._fatal is not None:
            raise PowerSamplingError(f"power sampling failed: {self._fatal}") from self._fatal
        return self._rows

    def rows(self) -> list[dict]:
        """The rows recorded so far (also usable after stop() raised, to keep what was measured)."""
        n = len(self._temp)  # appended last per sample: rows 0..n-1 are complete in every column
        first = self._first_mj
        return [
            {
                "t": self._t[k],
                "gpu": self._gpu[k],
                "power_w": None if math.isnan(self._power[k]) else self._power[k],
                "energy_j": (self._counter_mj[k] - first[self._gpu[k]]) / 1000.0,
                "temp_c": None if math.isnan(self._temp[k]) else self._temp[k],
                "energy_counter_j": self._counter_mj[k] / 1000.0,
                "t_err_s": self._t_err[k],
            }
            for k in range(n)
        ]

    def failure(self) -> str | None:
        """Why sampling broke down, or None while it works (checked during the load, not only at stop)."""
        if self._fatal is not None:
            return str(self._fatal)
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            return "the sampling thread ended unexpectedly"
        return None

    def latest(self) -> dict[int, float]:
        """Last instant power per GPU (W), for the live display."""
        return dict(self._latest)

    def info(self) -> dict[str, Any]:
        """Provenance for run.json: settings, achieved rate, read errors, counter offsets."""
        n = len(self._temp)
        duration = (self._stopped_at if not math.isnan(self._stopped_at) else time.time()) - self._started_at
        per_gpu = n / max(len(self.gpu_indices), 1)
        return {
            "source": "zeus.device",
            "period_s": self.period_s,
            "samples": n,
            "achieved_hz": per_gpu / duration if duration > 0 else None,
            "read_errors": self.read_errors,
            "power_source": {str(i): s for i, s in self.power_source.items()},
            "energy_counter_offset_j": {str(i): mj / 1000.0 for i, mj in self._first_mj.items()},
        }

    def __enter__(self) -> PowerSampler:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._rows is None:
            self.stop()


class SessionEnergyCheck:
    """One ZeusMonitor window over the whole session: an independent cross-check of the sampler."""

    WINDOW = "jouleflow-session"

    def __init__(self, gpu_indices: list[int]) -> None:
        if not gpu_indices:
            raise NoGPUError("SessionEnergyCheck needs at least one GPU index")
        gpus, self.gpu_indices = visible_gpus(gpu_indices)
        # Checked here because ZeusMonitor would start a busy-polling PowerMonitor for such GPUs.
        old = [i for i in self.gpu_indices if not gpus.supports_get_total_energy_consumption(i)]
        if old:
            raise NoGPUError(f"GPU(s) {old} have no energy counter (pre-Volta)")
        from zeus.device.gpu.common import EmptyGPUs

        try:
            from zeus.monitor import ZeusMonitor
        except ImportError as exc:  # zeus.monitor.power imports scikit-learn; the sampler does not need it
            raise ImportError(
                f"the ZeusMonitor cross-check needs zeus.monitor, which failed to import ({exc}); "
                "install zeus's dependencies (scikit-learn) or skip the cross-check"
            ) from exc

        try:
            self.monitor = ZeusMonitor(
                gpu_indices=list(self.gpu_indices), cpu_indices=[], approx_instant_energy=False
            )
        except ValueError as exc:  # Zeus fell back to EmptyGPUs and then failed on our indices
            raise NoGPUError(f"ZeusMonitor sees no GPU ({exc}); {self._environment()}") from exc
        seen = self.monitor.gpus
        if (
            isinstance(seen, EmptyGPUs)
            or list(self.monitor.gpu_indices) != self.gpu_indices
            or len(seen) <= max(self.gpu_indices)
        ):
            raise NoGPUError(
                f"ZeusMonitor monitors GPUs {self.monitor.gpu_indices} of {len(seen)} visible, "
                f"expected {self.gpu_indices}; {self._environment()}"
            )
        self._t_begin: tuple[float, float] | None = None

    @staticmethod
    def _environment() -> str:
        from jouleflow.measure.gpu_devices import describe_gpu_environment

        return describe_gpu_environment()

    def begin(self) -> None:
        before = time.time()
        self.monitor.begin_window(self.WINDOW, sync_execution=False)
        self._t_begin = (before, time.time())

    def end(self) -> dict:
        """{"time_s", "energy_j": {gpu: J}} plus unix t_begin / t_end, each ± its *_err_s.

        Zeus reads the counters at some instant inside [t - err, t + err] of each end, which
        lets the sampler's record be compared with this window to a known precision.
        """
        if self._t_begin is None:
            raise RuntimeError("SessionEnergyCheck.end() before begin()")
        before = time.time()
        measurement = self.monitor.end_window(self.WINDOW, sync_execution=False)
        after = time.time()
        b0, b1 = self._t_begin
        return {
            "time_s": measurement.time,
            "energy_j": {i: measurement.gpu_energy[i] for i in self.gpu_indices},
            "t_begin": (b0 + b1) / 2,
            "t_begin_err_s": (b1 - b0) / 2,
            "t_end": (before + after) / 2,
            "t_end_err_s": (after - before) / 2,
        }
