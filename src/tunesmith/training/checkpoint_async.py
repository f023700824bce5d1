"""Checkpoints written without blocking the loop: snapshot now, write + fsync + rename in a thread.

At a step boundary the loop's thread copies the checkpoint's content to host memory (checkpoint.
take_snapshot: weights, optimizer state, RNG, sums, JSON state), which takes a fraction of a second; the
writing, fsyncing and the atomic rename (checkpoint.write_snapshot) happen in one background thread while
training goes on. At most one write is in flight: the next checkpoint, the end of training and a
preemption wait for it first, so checkpoints land in step order and a run never ends with a write
pending. A write that fails raises its error at that wait. A crash or SIGKILL mid-write leaves only a
temporary directory that resume ignores, exactly as for a synchronous write.

`train.checkpoint_async: false` writes in the loop's thread (no second host copy of the model and
optimizer state while a write is in flight).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from tunesmith.training.checkpoint import take_snapshot, write_snapshot

log = logging.getLogger(__name__)


class CheckpointWriter:
    def __init__(self, background: bool = True) -> None:
        self.background = background
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, run_dir: Path, step: int, *, keep: int, **content: Any) -> None:
        """Snapshot the checkpoint content now; write it (in the background when enabled)."""
        self.wait()  # one write in flight: bounded memory, checkpoints in step order
        snapshot = take_snapshot(step, **content)
        if not self.background:
            write_snapshot(run_dir, snapshot, keep)
            return
        self._thread = threading.Thread(
            target=self._write, args=(run_dir, snapshot, keep), name=f"checkpoint-{step}"
        )
        self._thread.start()

    def _write(self, run_dir: Path, snapshot: Any, keep: int) -> None:
        try:
            write_snapshot(run_dir, snapshot, keep)
        except BaseException as exc:  # handed to the loop's thread at the next wait()
            self._error = exc

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk; raise its error if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.wait()
            return
        try:  # already failing: still finish the write, but do not hide the first error
            self.wait()
        except Exception as error:
            log.warning("checkpoint write failed too: %s", error)
