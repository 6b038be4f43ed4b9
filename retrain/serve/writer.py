"""Batched, retried writes of served predictions and feedback, off the request path.

Requests only append a row to an in-memory queue; one background thread writes the queue in
batches (every ``flush_seconds`` or as soon as ``batch_size`` rows wait) through a sink such
as ``ABTestingManager.log_predictions``. A failed write keeps its batch at the head of the
queue and is retried with a growing pause, so a locked or unreachable database delays rows
but does not lose them. The queue is bounded: when it is full (the database has been down for
a long time) new rows are refused and counted, never allowed to block a request or exhaust
memory. ``close()`` writes what is left, for shutdown.

Rows queued in memory are lost if the process is killed (SIGKILL, power loss): at most
``flush_seconds`` worth of traffic in normal operation.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from typing import Any, Callable

from retrain.errors import DataValidationError

log = logging.getLogger("retrain.serve")

Sink = Callable[[list[dict[str, Any]]], None]


class _Stream:
    """One kind of row (predictions or feedback): its queue, sink and counters."""

    def __init__(self, name: str, sink: Sink):
        self.name = name
        self.sink = sink
        self.queue: deque[dict[str, Any]] = deque()
        self.written = 0
        self.dropped = 0  # refused because the queue was full
        self.rejected = 0  # refused by the sink as invalid (never retried)
        self.failures = 0  # consecutive failed writes
        self.last_error: str | None = None
        self.last_flush = time.monotonic()
        self.retry_at = 0.0
        self.drop_logged_at = 0.0


class LogWriter:
    """Queues rows per stream and writes them in batches from a background thread."""

    def __init__(self, sinks: dict[str, Sink], *, batch_size: int = 500,
                 flush_seconds: float = 0.5, max_queue: int = 100_000,
                 max_retry_seconds: float = 30.0):
        if batch_size < 1 or flush_seconds <= 0 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be >= 1, flush_seconds > 0")
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.max_queue = max_queue
        self.max_retry_seconds = max_retry_seconds
        self._streams = {name: _Stream(name, sink) for name, sink in sinks.items()}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False

    # Request side ---------------------------------------------------------------------------
    def submit(self, stream: str, row: dict[str, Any]) -> bool:
        """Queue one row; False (and counted) if the queue is full. Never blocks on I/O."""
        s = self._streams[stream]
        with self._cond:
            if len(s.queue) >= self.max_queue:
                s.dropped += 1
                now = time.monotonic()
                if now - s.drop_logged_at > 10:
                    s.drop_logged_at = now
                    log.error("%s queue is full (%d rows waiting, last write error: %s): "
                              "refusing new rows, %d refused so far", s.name, len(s.queue),
                              s.last_error, s.dropped)
                return False
            s.queue.append(row)
            if len(s.queue) >= self.batch_size:
                self._cond.notify()
        return True

    # Background side ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="retrain-log-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._closing:
                    self._cond.wait(timeout=self._next_wake())
                closing = self._closing
            if closing:
                return
            for s in self._streams.values():
                self._flush_due(s)

    def _next_wake(self) -> float:
        now = time.monotonic()
        waits = [self.flush_seconds]
        for s in self._streams.values():
            if s.queue:
                due = max(s.last_flush + self.flush_seconds, s.retry_at)
                waits.append(due - now)
        return max(0.005, min(waits))

    def _flush_due(self, s: _Stream) -> None:
        """Write full batches, and a partial one when flush_seconds have passed."""
        while s.queue and time.monotonic() >= s.retry_at:
            full = len(s.queue) >= self.batch_size
            if not full and time.monotonic() - s.last_flush < self.flush_seconds:
                return
            if not self._write_batch(s):
                return

    def _write_batch(self, s: _Stream) -> bool:
        with self._cond:
            batch = list(itertools.islice(s.queue, self.batch_size))
        try:
            s.sink(batch)
        except DataValidationError as exc:
            # Not transient: retrying would block the queue for ever. Write the batch row by
            # row so only the rows the sink refuses are dropped.
            self._write_rows_singly(s, batch, exc)
            return True
        except Exception as exc:  # noqa: BLE001 - any database error: keep the rows, retry
            s.failures += 1
            s.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            pause = min(self.max_retry_seconds, self.flush_seconds * 2 ** min(s.failures, 16))
            s.retry_at = time.monotonic() + pause
            level = logging.ERROR if s.failures in (1, 5) or s.failures % 50 == 0 else logging.DEBUG
            log.log(level, "writing %d %s rows failed (attempt %d, %d rows waiting, retry in "
                    "%.1fs): %s", len(batch), s.name, s.failures, len(s.queue), pause, s.last_error)
            return False
        with self._cond:
            for _ in range(len(batch)):
                s.queue.popleft()
        if s.failures:
            log.warning("%s rows are written again after %d failed attempt(s)", s.name, s.failures)
        s.written += len(batch)
        s.failures = 0
        s.retry_at = 0.0
        s.last_flush = time.monotonic()
        return True

    def _write_rows_singly(self, s: _Stream, batch: list[dict[str, Any]],
                           first_error: DataValidationError) -> None:
        log.error("the %s sink refused a batch (%s); writing it row by row", s.name, first_error)
        written = 0
        for row in batch:
            try:
                s.sink([row])
                written += 1
            except DataValidationError as exc:
                s.rejected += 1
                log.error("dropped a %s row the sink refuses: %s (%r)", s.name, exc, row)
            except Exception:  # noqa: BLE001 - a database error now: retry the rest later
                break
            with self._cond:
                s.queue.popleft()
        s.written += written
        s.last_flush = time.monotonic()

    def flush(self, timeout: float = 10.0) -> int:
        """Write everything queued now (from the caller's thread, while the background thread
        is stopped or idle); retries failed writes until ``timeout``. Returns rows left."""
        deadline = time.monotonic() + timeout
        for s in self._streams.values():
            s.retry_at = 0.0
            while s.queue:
                if self._write_batch(s):
                    continue
                if time.monotonic() >= deadline:
                    break
                now = time.monotonic()
                time.sleep(max(0.0, min(s.retry_at - now, deadline - now, 1.0)))
        return self.pending()

    def close(self, timeout: float = 10.0) -> int:
        """Stop the background thread and write what is queued; returns the rows that could
        not be written within ``timeout`` (and logs them as lost)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout + 5)
            if self._thread.is_alive():
                # Still inside a write (a database lock?): flushing now could write its batch
                # a second time, so report the rows as unwritten instead.
                log.error("the log writer is stuck in a write; %d rows may be lost",
                          self.pending())
                return self.pending()
            self._thread = None
        left = self.flush(timeout)
        if left:
            log.error("shutting down with %d prediction/feedback rows unwritten (last error: %s)",
                      left, "; ".join(s.last_error for s in self._streams.values() if s.last_error))
        return left

    # Reporting ------------------------------------------------------------------------------
    def pending(self) -> int:
        return sum(len(s.queue) for s in self._streams.values())

    def stats(self) -> dict[str, Any]:
        """Per stream: rows waiting, written, refused (queue full), the failing write if any."""
        return {s.name: {"pending": len(s.queue), "written": s.written, "dropped": s.dropped,
                         "rejected": s.rejected,
                         "failing": s.failures > 0, "last_error": s.last_error}
                for s in self._streams.values()}

    def healthy(self) -> bool:
        return all(s.failures == 0 and len(s.queue) < self.max_queue
                   for s in self._streams.values())
