"""A thread pool for synchronous handlers that survives handlers that never return.

``concurrent.futures.ThreadPoolExecutor`` has a fixed number of workers, so a handler stuck
past its timeout would hold one of them forever. Here a timed-out call's thread is simply
abandoned (never killed by an injected exception: that corrupts user state) and the pool
starts another thread when calls wait behind slow ones. Quick handlers run on a few
threads (every extra thread costs GIL hand-offs); handlers that block (I/O, sleep, a stuck
call) get more, up to the runtime's concurrency limit plus the threads abandoned so far,
which ``/metrics`` reports.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

# Threads started at once; beyond them, only for calls still waiting after the delay.
CORE_THREADS = 4
GROWTH_DELAY_SECONDS = 0.002

_Job = tuple[asyncio.Future[Any], contextvars.Context, Callable[..., Any], tuple[Any, ...]]


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller timed out and cancelled it
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class HandlerThreads:
    def __init__(self, loop: asyncio.AbstractEventLoop, name: str = "hanshu-handler") -> None:
        self._loop = loop
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._pending = 0
        self._threads = 0
        # Finished calls are handed back in batches: one loop wake-up (a self-pipe write and
        # a syscall) serves every call that finished before the loop got to run.
        self._finished: collections.deque[tuple[asyncio.Future[Any], Any, BaseException | None]]
        self._finished = collections.deque()
        self._wakeup_scheduled = False
        self._growth_check_scheduled = False
        self._busy_since: dict[int, float] = {}  # thread id -> when its current call began

    def submit(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()
        with self._lock:
            self._pending += 1
            waiting = self._pending > self._idle
            start_now = waiting and self._threads < CORE_THREADS
            if start_now:
                self._threads += 1
        self._jobs.put((future, contextvars.copy_context(), function, args))
        if start_now:
            self._start_thread()
        elif waiting and not self._growth_check_scheduled:
            # More threads only when calls really wait: quick handlers then run on a few
            # threads (fewer GIL hand-offs), blocking ones still get a thread each.
            self._growth_check_scheduled = True
            self._loop.call_later(GROWTH_DELAY_SECONDS, self._grow)
        return future

    def _start_thread(self) -> None:
        threading.Thread(
            target=self._work, name=f"{self._name}-{self._threads}", daemon=True
        ).start()

    def _grow(self) -> None:
        """Start a thread for each waiting call that has a thread stuck in a slow call to
        thank for the wait; calls waiting behind quick ones are picked up soon anyway."""
        self._growth_check_scheduled = False
        now = time.monotonic()
        slow = sum(
            1
            for started in list(self._busy_since.values())
            if now - started >= GROWTH_DELAY_SECONDS
        )
        with self._lock:
            missing = min(self._pending - self._idle, slow)
            if missing > 0:
                self._threads += missing
            still_waiting = self._pending > self._idle
        for _ in range(max(0, missing)):
            self._start_thread()
        if still_waiting:
            self._growth_check_scheduled = True
            self._loop.call_later(GROWTH_DELAY_SECONDS, self._grow)

    def _work(self) -> None:
        # Lambda runs a handler in a thread where ``asyncio.get_event_loop()`` works, and
        # adapters rely on it: Mangum drives the ASGI app with the thread's loop. Ours are
        # pool threads, which have none unless given one.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._serve()
        finally:
            with contextlib.suppress(RuntimeError):  # a handler left it running
                loop.close()

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
                self._pending -= 1
            if job is None:
                with self._lock:
                    self._threads -= 1
                return
            future, context, function, args = job
            me = threading.get_ident()
            self._busy_since[me] = time.monotonic()
            try:
                result = context.run(function, *args)
            except BaseException as error:  # handed to the caller, who reports it
                self._post(future, None, error)
            else:
                self._post(future, result, None)
            finally:
                del self._busy_since[me]

    def _post(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        self._finished.append((future, result, error))
        if self._wakeup_scheduled:
            return
        self._wakeup_scheduled = True
        # RuntimeError: the loop closed while an abandoned call was still running.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._hand_back)

    def _hand_back(self) -> None:
        # Clear the flag before draining: a call finishing meanwhile either is drained here
        # or schedules another wake-up, never neither.
        self._wakeup_scheduled = False
        finished = self._finished
        while finished:
            _resolve(*finished.popleft())

    def shutdown(self) -> None:
        """Ask idle threads to exit; busy (or abandoned) ones are daemons and die with us."""
        for _ in range(self._threads):
            self._jobs.put(None)
