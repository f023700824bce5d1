"""`tunesmith run RECIPE --processes N` (or `train.processes: N`): re-run the same command under
`accelerate launch`, which starts N processes and sets up torch.distributed (gloo on CPU, NCCL on GPUs).
Nothing here distributes anything itself; it checks the request and hands it to Accelerate.

Inside launched processes (WORLD_SIZE is set by the launcher) this module does nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType
from typing import Any

import torch

from tunesmith.errors import UserError
from tunesmith.training.preemption import EXIT_CODE as PREEMPTED_EXIT_CODE

LAUNCHED_ENV = "TUNESMITH_LAUNCHED"  # set for the launched processes, so they never launch again


def launched() -> bool:
    """True inside a process started by `accelerate launch` / torchrun (one of several, or one of one)."""
    return "WORLD_SIZE" in os.environ or LAUNCHED_ENV in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def cpu_processes() -> bool:
    """Several processes without a GPU: Accelerate must be told `cpu=True` to use gloo (MULTI_CPU), else
    each torchrun-launched process would train alone."""
    return world_size() > 1 and not torch.cuda.is_available()


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def available_devices() -> tuple[int, str]:
    """(how many processes this machine can run one per device, what those devices are)."""
    if torch.cuda.is_available():
        return torch.cuda.device_count(), "CUDA GPUs"
    return os.cpu_count() or 1, "CPU cores (no GPU)"


def check_processes(processes: int) -> None:
    """train.processes must fit this machine: one process per GPU, or per CPU core without a GPU."""
    if processes <= 1 or launched():
        return
    count, kind = available_devices()
    if processes > count:
        raise UserError(
            f"train.processes: {processes} is more than the {count} {kind} here; use train.processes: "
            f"{count} or fewer, or run `accelerate launch` on each machine for several machines (README "
            f'"Preemption, several processes and machines").'
        )


def launch_command(processes: int, argv: list[str]) -> list[str]:
    """`accelerate launch` running `python -m tunesmith <argv>` in `processes` processes on this machine.
    `--mixed_precision no`: the recipe's train.precision decides, tunesmith passes it to Accelerator()."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
               "--num_machines", "1", "--dynamo_backend", "no", "--mixed_precision", "no"]  # fmt: skip
    # --multi_gpu is Accelerate's torchrun launcher; without a GPU its processes use gloo on the CPU
    # (`--cpu` would start a single process)
    command.append("--multi_gpu")
    return [*command, "-m", "tunesmith", *argv]


def maybe_launch(processes: int, argv: list[str]) -> int | None:
    """With train.processes > 1 outside a launched process: check it fits, launch, return the exit code.
    None: run here (one process, or already one of the launched ones)."""
    if processes <= 1 or launched():
        return None
    check_processes(processes)
    return run_launched(processes, argv)


def run_launched(processes: int, argv: list[str]) -> int:
    """Run the command in `processes` processes; return the exit code to leave with.

    SIGTERM (preemption) is passed on to the launcher, which passes it to every process: each writes the
    checkpoint at the same step boundary and exits 75; the launcher itself then fails with its own code,
    so a preempted launch leaves with 75 as a single process does."""
    proc = subprocess.Popen(launch_command(processes, argv), env={**os.environ, LAUNCHED_ENV: "1"})
    signalled: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)
        proc.send_signal(signum)

    previous: Any = signal.signal(signal.SIGTERM, forward)
    try:
        rc = proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if signalled and rc != 0:
        return PREEMPTED_EXIT_CODE
    return rc


def check_run(processes: int, lr_auto: bool, cv: bool) -> None:
    """What run() cannot do across processes, refused before any work."""
    n = max(processes, world_size())
    if n <= 1:
        return
    if processes > 1 and world_size() == 1:
        raise UserError(
            f"train.processes: {processes} but this is a single process: run `tunesmith run RECIPE` (it starts "
            "them) or `accelerate launch --multi_gpu --num_processes N -m tunesmith run RECIPE`."
        )
    if lr_auto:
        raise UserError("train.lr: auto runs its range test in one process; pick the lr with `tunesmith lr-find` "
                        "first, or set train.processes: 1.")  # fmt: skip
    if cv:
        raise UserError("eval.cv: cross-validation runs its folds in one process; set train.processes: 1.")


def barrier() -> None:
    """Wait for every process (no-op in one): the main process writes the run directory between two."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState(cpu=cpu_processes()).wait_for_everyone()
