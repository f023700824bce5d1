"""Memory on this machine: what there is, and a peak meter for a stretch of code (CUDA or host RAM).

On CUDA the meter reads torch.cuda.max_memory_allocated. On CPU it reads the kernel's high-water mark of
the process's resident memory (VmHWM), which Linux resets when "5" is written to /proc/self/clear_refs;
the C heap is trimmed first so the resident size is live memory. Where that is not possible it falls back to getrusage's lifetime peak (a delta, then, only counts memory
above every earlier peak). Large tensors come from mmap and go back to the kernel when freed, so the
resident size follows the live tensors closely.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
from dataclasses import dataclass
from pathlib import Path

import torch

MIB = 2**20


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes() -> int:
    kb = _status_kb("VmRSS")
    return kb * 1024 if kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _trim_heap() -> None:
    """Give the C heap's free pages back to the kernel (glibc malloc_trim), so the resident size counts
    live memory only: glibc keeps freed blocks under its (growing) mmap threshold resident, which would
    hide a new allocation that reuses them from the peak."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL(None).malloc_trim(0)


def _reset_host_peak() -> bool:
    _trim_heap()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _host_peak_bytes() -> int:
    kb = _status_kb("VmHWM")
    return kb * 1024 if kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMeter:
    """`with PeakMeter(device) as m: ...` then `m.peak_delta`: the peak bytes above the start, inside."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.start = 0
        self.peak_delta = 0

    def __enter__(self) -> PeakMeter:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            _reset_host_peak()
            self.start = rss_bytes()
        return self

    def __exit__(self, *_: object) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.peak_delta = max(0, torch.cuda.max_memory_allocated(self.device) - self.start)
        else:
            self.peak_delta = max(0, _host_peak_bytes() - self.start)


def in_use_bytes(device: torch.device) -> int:
    """What the process holds now on the device (CUDA: allocated tensors; CPU: resident memory)."""
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else rss_bytes()


@dataclass
class DeviceInfo:
    name: str  # "cpu" | "cuda:0"
    description: str  # e.g. "NVIDIA H200" or "AMD EPYC 7B13, 2 cores"
    total_bytes: int
    available_bytes: int  # what a run could still take (CUDA: free; CPU: MemAvailable)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "total_mb": self.total_bytes / MIB,
                "available_mb": self.available_bytes / MIB}  # fmt: skip


def _meminfo_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_limit() -> int | None:
    """A container's memory limit (cgroup v2 or v1), when it is below the machine's RAM."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def host_memory() -> DeviceInfo:
    total = _meminfo_bytes("MemTotal") or 0
    available = _meminfo_bytes("MemAvailable") or total
    available += rss_bytes()  # what this process already holds is available to it too
    limit = _cgroup_limit()
    if limit is not None and limit < total:
        total = limit
        available = min(available, limit)
    return DeviceInfo("cpu", f"{_cpu_name()}, {cpu_cores()} cores", total, available)


def devices() -> list[DeviceInfo]:
    """Every device found: the host first, then each CUDA GPU."""
    found = [host_memory()]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            # what this process already reserved is available to it too
            free += torch.cuda.memory_reserved(i)
            found.append(DeviceInfo(f"cuda:{i}", torch.cuda.get_device_name(i), total, min(free, total)))
    return found
