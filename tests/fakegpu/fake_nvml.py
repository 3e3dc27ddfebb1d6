"""A fake NVIDIA GPU for tests: patches the *functions* of the real `pynvml` module.

Constants, structures and `NVMLError` stay real, so Zeus's own NVIDIA code path runs unchanged
on top of it. Every `nvml*` function of pynvml is replaced while the fake is installed: the ones
modelled below answer from the fake devices, all others raise NVML_ERROR_NOT_SUPPORTED, so a
test can never reach a real driver by accident.

Power is a piecewise-constant signal of `time.time()`; the energy counter is its exact integral
(floored to whole millijoules, as NVML reports them) plus a per-device "energy since driver load"
offset, so tests can check accounting to the joule.

Tests only. Nothing under workflow/ imports this module or reads the FAKE_GPU_* variables.

Configured by FAKE_GPU_* environment variables (FakeGPUConfig.from_env; sitecustomize.py uses
them in subprocesses): see docs/testing.md for the table.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import sys
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pynvml

DEFAULT_NAME = "NVIDIA H100 80GB HBM3"
DRIVER_VERSION = "550.54.15"
CUDA_DRIVER_VERSION = 12040  # NVML encodes CUDA 12.4 as 1000 * major + 10 * minor
# H100 SXM figures, in NVML's units (mW, MHz, bytes).
POWER_LIMIT_MW = 700_000
MIN_POWER_LIMIT_MW = 200_000
MAX_SM_CLOCK_MHZ, SM_CLOCK_MHZ = 1980, 1755
MAX_MEM_CLOCK_MHZ = MEM_CLOCK_MHZ = 2619
MEMORY_TOTAL_B = 81_559 * 2**20
# Latent metrics: utilization (%) and the clocks-event reasons bitmask (software power cap).
UTIL_GPU_PCT, UTIL_MEM_PCT = 87, 41
CLOCKS_EVENT_REASONS = 0x4
# Counter offsets make absolute counter values obviously different from session energy.
ENERGY_OFFSET_MJ = 5_000_000_000
ENERGY_OFFSET_STEP_MJ = 100_000_000
FAKEGPU_DIR = os.path.dirname(os.path.abspath(__file__))
# Variables that change which GPUs Zeus sees or route it to a daemon: cleared for fake runs.
GPU_ENV_VARS = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ZEUSD_SOCK_PATH",
    "ZEUSD_HOST_PORT",
    "ZEUSD_TOKEN",
)
# Functions that are pure helpers in pynvml, not calls into the library.
_KEEP_REAL = {"nvmlStructToFriendlyObject", "nvmlFriendlyObjectToStruct"}


@dataclass(frozen=True)
class PowerProfile:
    """Piecewise-constant power: `watts[i]` from `t0 + starts[i]` (the first level also extends back)."""

    t0: float
    starts: tuple[float, ...]
    watts: tuple[float, ...]

    @classmethod
    def parse(cls, text: str, t0: float) -> PowerProfile:
        starts, watts = [0.0], []
        for i, part in enumerate(p.strip() for p in text.split(",")):
            if i == 0:
                watts.append(float(part))
                continue
            at, _, w = part.partition(":")
            if not w or float(at) <= starts[-1]:
                raise ValueError(f"FAKE_GPU_POWER_W: bad step {part!r} in {text!r} (want increasing T:W)")
            starts.append(float(at))
            watts.append(float(w))
        return cls(t0=t0, starts=tuple(starts), watts=tuple(watts))

    def power_w(self, t: float) -> float:
        i = bisect.bisect_right(self.starts, t - self.t0) - 1
        return self.watts[max(i, 0)]

    def energy_j(self, t: float) -> float:
        """Exact integral of the power from t0 to t (negative before t0)."""
        x = t - self.t0
        if x <= 0:
            return self.watts[0] * x
        total = 0.0
        for i, start in enumerate(self.starts):
            if start >= x:
                break
            end = self.starts[i + 1] if i + 1 < len(self.starts) else math.inf
            total += self.watts[i] * (min(end, x) - start)
        return total


@dataclass
class FakeDevice:
    index: int  # physical NVML index
    name: str
    profile: PowerProfile
    arch: int
    energy_offset_mj: int
    processes: list[tuple[int, int]] = field(default_factory=list)  # (pid, used bytes)

    @property
    def uuid(self) -> str:
        return f"GPU-fa4e0000-0000-4000-8000-{self.index:012d}"

    def energy_mj(self, t: float) -> int:
        return self.energy_offset_mj + math.floor(1000.0 * self.profile.energy_j(t))

    def temperature_c(self, t: float) -> int:
        return int(30 + 0.06 * self.profile.power_w(t))


@dataclass
class FakeGPUConfig:
    count: int = 1
    name: str = DEFAULT_NAME
    power_w: str = "300"
    t0: float | None = None
    arch: str = "HOPPER"
    processes: str = ""
    init_error: str | None = None
    log: str | None = None
    energy_fail_after: int | None = None  # energy counter reads that succeed before it raises GPU_IS_LOST
    unsupported: str = ""  # comma-separated pynvml functions that raise NOT_SUPPORTED (a driver without them)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> FakeGPUConfig:
        t0 = env.get("FAKE_GPU_T0")
        return cls(
            count=int(env.get("FAKE_GPU_COUNT", "1")),
            name=env.get("FAKE_GPU_NAME", DEFAULT_NAME),
            power_w=env.get("FAKE_GPU_POWER_W", "300"),
            t0=float(t0) if t0 else None,
            arch=env.get("FAKE_GPU_ARCH", "HOPPER"),
            processes=env.get("FAKE_GPU_PROCESSES", ""),
            init_error=env.get("FAKE_GPU_INIT_ERROR") or None,
            log=env.get("FAKE_GPU_LOG") or None,
            energy_fail_after=int(env["FAKE_GPU_ENERGY_FAIL_AFTER"])
            if env.get("FAKE_GPU_ENERGY_FAIL_AFTER")
            else None,
            unsupported=env.get("FAKE_GPU_UNSUPPORTED", ""),
        )

    def to_env(self) -> dict[str, str]:
        env = {
            "FAKE_GPU_COUNT": str(self.count),
            "FAKE_GPU_NAME": self.name,
            "FAKE_GPU_POWER_W": self.power_w,
            "FAKE_GPU_ARCH": self.arch,
            "FAKE_GPU_PROCESSES": self.processes,
        }
        if self.t0 is not None:
            env["FAKE_GPU_T0"] = repr(self.t0)
        if self.init_error:
            env["FAKE_GPU_INIT_ERROR"] = self.init_error
        if self.log:
            env["FAKE_GPU_LOG"] = self.log
        if self.energy_fail_after is not None:
            env["FAKE_GPU_ENERGY_FAIL_AFTER"] = str(self.energy_fail_after)
        if self.unsupported:
            env["FAKE_GPU_UNSUPPORTED"] = self.unsupported
        return env


def _parse_profiles(text: str, count: int, t0: float) -> list[PowerProfile]:
    """One profile per GPU from "p0;p1;..." (the last one repeats)."""
    texts = [p for p in text.split(";") if p.strip()] or ["300"]
    return [PowerProfile.parse(texts[min(i, len(texts) - 1)], t0) for i in range(count)]


def _nvml_error_code(name: str) -> int:
    key = name if name.startswith("NVML_ERROR_") else f"NVML_ERROR_{name}"
    if not hasattr(pynvml, key):
        raise ValueError(f"FAKE_GPU_INIT_ERROR: unknown NVML error {name!r}")
    return getattr(pynvml, key)


class FakeNVML:
    """The installed fake: devices plus the replacement pynvml functions."""

    def __init__(self, config: FakeGPUConfig) -> None:
        self.configure(config)

    def configure(self, config: FakeGPUConfig) -> None:
        """(Re)build the devices. Zeus's singletons are reset so the next get_gpus() sees them."""
        if config.t0 is None:
            config.t0 = time.time()
        self.config = config
        self.init_error = _nvml_error_code(config.init_error) if config.init_error else None
        arch = getattr(pynvml, f"NVML_DEVICE_ARCH_{config.arch.upper()}")
        profiles = _parse_profiles(config.power_w, config.count, config.t0)
        self.devices = [
            FakeDevice(i, config.name, profiles[i], arch, ENERGY_OFFSET_MJ + i * ENERGY_OFFSET_STEP_MJ)
            for i in range(config.count)
        ]
        for item in filter(None, (p.strip() for p in config.processes.split(","))):
            index, pid, mib = (int(x) for x in item.split(":"))
            self.devices[index].processes.append((pid, mib * 2**20))
        self.init_count = 0
        self.energy_reads = 0
        reset_zeus()

    @property
    def t0(self) -> float:
        assert self.config.t0 is not None
        return self.config.t0

    def set_power(self, power_w: str, t0: float | None = None) -> None:
        """Switch to a new power signal (FAKE_GPU_POWER_W syntax) counted from t0 (default: now).

        Devices, handles and Zeus's objects stay; each counter stays continuous (to 1 mJ) and
        is from now on the exact integral of the new signal.
        """
        now = time.time()
        self.config.t0 = now if t0 is None else t0
        self.config.power_w = power_w
        for device, profile in zip(
            self.devices, _parse_profiles(power_w, len(self.devices), self.t0), strict=True
        ):
            before = device.profile.energy_j(now)
            device.profile = profile
            device.energy_offset_mj += round(1000.0 * (before - profile.energy_j(now)))

    def add_process(self, index: int, pid: int, used_mib: int) -> None:
        self.devices[index].processes.append((pid, used_mib * 2**20))

    # --- the replacement functions, keyed by pynvml name -------------------------------------
    def _device(self, handle: object) -> FakeDevice:
        if not isinstance(handle, FakeHandle) or handle.fake is not self:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.devices[handle.index]

    def functions(self) -> dict[str, Callable[..., object]]:
        dev = self._device

        def init(*_args: object) -> None:
            if self.init_error is not None:
                raise pynvml.NVMLError(self.init_error)
            self.init_count += 1

        def shutdown() -> None:
            self.init_count = max(self.init_count - 1, 0)

        def handle_by_index(index: int) -> FakeHandle:
            if not 0 <= index < len(self.devices):
                raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return FakeHandle(self, index)

        def field_values(handle: object, field_ids: list) -> list:
            d, now = dev(handle), time.time()
            out = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
            for value, fid in zip(out, field_ids, strict=True):
                value.fieldId, value.scopeId = fid if isinstance(fid, tuple) else (fid, 0)
                value.timestamp = int(now * 1e6)
                value.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
                value.nvmlReturn = pynvml.NVML_SUCCESS
                if value.fieldId == pynvml.NVML_FI_DEV_POWER_INSTANT:
                    value.value.uiVal = round(1000 * d.profile.power_w(now))
                elif value.fieldId == pynvml.NVML_FI_DEV_POWER_AVERAGE:  # mean over the last second
                    value.value.uiVal = round(1000 * (d.profile.energy_j(now) - d.profile.energy_j(now - 1)))
                else:
                    value.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
            return out

        def processes(handle: object) -> list:
            return [
                pynvml.nvmlFriendlyObject(
                    {
                        "pid": pid,
                        "usedGpuMemory": used,
                        "gpuInstanceId": 0xFFFFFFFF,
                        "computeInstanceId": 0xFFFFFFFF,
                    }
                )
                for pid, used in dev(handle).processes
            ]

        def max_clock(handle: object, kind: int) -> int:
            dev(handle)
            return MAX_MEM_CLOCK_MHZ if kind == pynvml.NVML_CLOCK_MEM else MAX_SM_CLOCK_MHZ

        def clock(handle: object, kind: int) -> int:
            dev(handle)
            return MEM_CLOCK_MHZ if kind == pynvml.NVML_CLOCK_MEM else SM_CLOCK_MHZ

        def memory_info(handle: object, version: object = None) -> object:
            dev(handle)
            return types.SimpleNamespace(total=MEMORY_TOTAL_B, free=MEMORY_TOTAL_B, used=0)

        def energy(handle: object) -> int:
            d, self.energy_reads = dev(handle), self.energy_reads + 1
            if (
                self.config.energy_fail_after is not None
                and self.energy_reads > self.config.energy_fail_after
            ):
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)  # the sensor breaks mid-run
            return d.energy_mj(time.time())

        def not_supported_c2c(handle: object) -> None:
            dev(handle)
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

        def limit(_handle: object) -> int:
            dev(_handle)
            return POWER_LIMIT_MW

        def utilization(handle: object) -> object:
            dev(handle)
            return types.SimpleNamespace(gpu=UTIL_GPU_PCT, memory=UTIL_MEM_PCT)

        def clocks_event_reasons(handle: object) -> int:
            dev(handle)
            return CLOCKS_EVENT_REASONS

        modelled: dict[str, Callable[..., object]] = {
            "nvmlInit": init,
            "nvmlInitWithFlags": init,
            "nvmlShutdown": shutdown,
            "nvmlErrorString": lambda code: pynvml.NVMLError._errcode_to_string.get(code, "Unknown Error"),
            "nvmlSystemGetDriverVersion": lambda: DRIVER_VERSION,
            "nvmlSystemGetNVMLVersion": lambda: "12." + DRIVER_VERSION,
            "nvmlSystemGetCudaDriverVersion": lambda: CUDA_DRIVER_VERSION,
            "nvmlSystemGetCudaDriverVersion_v2": lambda: CUDA_DRIVER_VERSION,
            "nvmlDeviceGetCount": lambda: len(self.devices),
            "nvmlDeviceGetHandleByIndex": handle_by_index,
            "nvmlDeviceGetIndex": lambda h: dev(h).index,
            "nvmlDeviceGetName": lambda h: dev(h).name,
            "nvmlDeviceGetUUID": lambda h: dev(h).uuid,
            "nvmlDeviceGetSerial": lambda h: f"fake-{dev(h).index:04d}",
            "nvmlDeviceGetPciInfo": lambda h: types.SimpleNamespace(
                busId=f"00000000:{0x18 + dev(h).index:02X}:00.0"
            ),
            "nvmlDeviceGetArchitecture": lambda h: dev(h).arch,
            "nvmlDeviceGetC2cModeInfoV": not_supported_c2c,
            "nvmlDeviceGetTotalEnergyConsumption": energy,
            "nvmlDeviceGetPowerUsage": lambda h: round(1000 * dev(h).profile.power_w(time.time())),
            "nvmlDeviceGetFieldValues": field_values,
            "nvmlDeviceGetTemperature": lambda h, sensor: dev(h).temperature_c(time.time()),
            "nvmlDeviceGetTemperatureV": lambda h, sensor, version=None: dev(h).temperature_c(time.time()),
            "nvmlDeviceGetPowerManagementLimit": limit,
            "nvmlDeviceGetPowerManagementDefaultLimit": limit,
            "nvmlDeviceGetEnforcedPowerLimit": limit,
            "nvmlDeviceGetPowerManagementLimitConstraints": lambda h: [MIN_POWER_LIMIT_MW, limit(h)],
            "nvmlDeviceGetMaxClockInfo": max_clock,
            "nvmlDeviceGetClockInfo": clock,
            "nvmlDeviceGetMemoryInfo": memory_info,
            "nvmlDeviceGetComputeRunningProcesses": processes,
            "nvmlDeviceGetUtilizationRates": utilization,
            "nvmlDeviceGetCurrentClocksEventReasons": clocks_event_reasons,
            "nvmlDeviceGetCurrentClocksThrottleReasons": clocks_event_reasons,
        }
        # Read at each call, so that configure() can change what the "driver" supports.
        return {name: self._gated(name, fn) for name, fn in modelled.items()}

    def _gated(self, name: str, fn: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            if name in {n.strip() for n in self.config.unsupported.split(",")}:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return fn(*args, **kwargs)

        call.__name__ = name
        return call


@dataclass(frozen=True)
class FakeHandle:
    fake: FakeNVML
    index: int


_active: FakeNVML | None = None
_originals: dict[str, object] = {}


def _not_supported(name: str) -> Callable[..., object]:
    def fn(*_args: object, **_kwargs: object) -> object:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    fn.__name__ = name
    return fn


def reset_zeus() -> None:
    """Forget Zeus's cached GPU/CPU objects and its cached NVML probe (only if Zeus is loaded)."""
    if "zeus.device.gpu" not in sys.modules:
        return
    import zeus.device.cpu
    import zeus.device.gpu
    import zeus.device.gpu.nvidia

    zeus.device.gpu._gpus = None
    zeus.device.cpu._cpus = None
    zeus.device.gpu.nvidia.nvml_is_available.cache_clear()


def install(config: FakeGPUConfig | None = None) -> FakeNVML:
    """Patch pynvml's functions with a fresh fake (replacing one already installed)."""
    global _active
    fake = FakeNVML(config or FakeGPUConfig())
    if not _originals:
        _originals.update(
            {
                n: v
                for n, v in vars(pynvml).items()
                if n.startswith("nvml") and n not in _KEEP_REAL and isinstance(v, types.FunctionType)
            }
        )
    replacements = fake.functions()
    for name in _originals:
        setattr(pynvml, name, replacements.get(name) or _not_supported(name))
    _active = fake
    reset_zeus()
    if fake.config.log:
        with open(fake.config.log, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), **vars(fake.config)}) + "\n")
    return fake


def uninstall() -> None:
    """Restore pynvml's real functions and reset Zeus so it probes the real library again."""
    global _active
    for name, fn in _originals.items():
        setattr(pynvml, name, fn)
    _originals.clear()
    _active = None
    reset_zeus()


def active() -> FakeNVML | None:
    return _active


def subprocess_env(fake: FakeNVML, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child Python process that sees the same fake GPUs on the same power clock.

    Prepends this directory to PYTHONPATH (so sitecustomize.py installs the fake there) and
    clears CUDA_VISIBLE_DEVICES & co.; set them on the result where a test needs them.
    """
    env = dict(os.environ if base is None else base)
    for var in GPU_ENV_VARS:
        env.pop(var, None)
    env.update(fake.config.to_env())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [FAKEGPU_DIR, env.get("PYTHONPATH", "")]))
    return env
