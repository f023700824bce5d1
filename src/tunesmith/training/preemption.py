"""Preemption: spot and queue-managed machines send SIGTERM, wait a grace period, then SIGKILL, and requeue
the same command. On SIGTERM a run finishes the optimizer step it is in, writes a checkpoint, and exits with
EXIT_CODE; the requeued `tunesmith run RECIPE --resume` continues from that checkpoint bit for bit.

The signal handler only sets a flag (nothing else is safe inside a handler); the loop reads it at each
optimizer-step boundary. With several processes the flag is agreed on with one all-reduce at that boundary,
so every process stops after the same step (a process that stopped alone would hang the others' all-reduce).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any

EXIT_CODE = 75  # EX_TEMPFAIL (sysexits.h): "temporary failure, retry": preempted, a checkpoint is on disk
SIGNALS = (signal.SIGTERM,)
# Fault injection for the preemption tests: seconds to sleep at each optimizer-step boundary, so a signal
# sent from outside lands mid-epoch on a tiny model.
STEP_DELAY_ENV = "TUNESMITH_FAULT_STEP_DELAY"


class Preempted(Exception):
    """Raised by the loop after the preemption checkpoint is written; the CLI turns it into EXIT_CODE."""

    def __init__(self, checkpoint: Any, step: int) -> None:
        super().__init__(
            f"preempted (SIGTERM): checkpoint at step {step} written to {checkpoint}; "
            "run the same command with --resume to continue"
        )
        self.checkpoint, self.step = checkpoint, step


class PreemptionWatch:
    """Context manager: while inside, SIGTERM sets `requested` instead of killing the process."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}
        self._delay = float(os.environ.get(STEP_DELAY_ENV) or 0.0)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def __enter__(self) -> PreemptionWatch:
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def at_step_boundary(self) -> None:
        if self._delay:
            time.sleep(self._delay)
