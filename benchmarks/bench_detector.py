"""What the loop heartbeat and the blocking-call watchdog cost (goal: at most 3% under load).

Figures on asyncio and on uvloop, at the default settings (a beat every 10 ms, a 100 ms
blocking threshold, so the watchdog looks at the heartbeat about every 40-50 ms):

* Throughput under load: a fixed batch of short async "requests" (a few awaits and a little
  work each, 100 in flight), timed bare and with the heartbeat + watchdog installed (one
  detector and one lag monitor held for the whole batch: the shared per-loop cost that every
  request pays while requests are profiled). Each round runs bare, bare again and instrumented
  in rotating order; the figure is the median of the per-round ratios to the first bare run.
  "bare again" is the A/A check: what the noise of this machine alone looks like.
* The same cost computed from its parts: what one beat and one watchdog check cost, times how
  often they happen (context switches not included).
* Idle CPU: the process's CPU time (all threads, ``time.process_time``) over an idle loop:
  bare, with a plain no-op ``call_later`` every 10 ms (the floor of any heartbeat: waking the
  loop), with the heartbeat (lag monitoring) and with heartbeat + watchdog.
* Set-up per request: ``install`` + ``uninstall`` of a detector and a monitor alone on the loop
  (installs the heartbeat, starts and joins the watchdog thread) and when another request
  already holds them (adds and removes two listeners).

On Linux the process is pinned to one CPU: the loop and the watchdog share the GIL anyway, and
without pinning, thread migration on a busy machine is noisier than what is measured.
"""

from __future__ import annotations

import asyncio
import functools
import os
import statistics
import time
from typing import TYPE_CHECKING, Any

import uvloop

from benchmarks import Result
from debug_toolbar.core.panels.async_profiler.detector import (
    BlockingCallDetector,
    EventLoopLagMonitor,
)
from debug_toolbar.core.panels.async_profiler.heartbeat import LoopHeartbeat
from debug_toolbar.core.panels.async_profiler.watchdog import Watchdog

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ("run",)

REQUESTS = 6_000
IN_FLIGHT = 100
AWAITS_PER_REQUEST = 5
ROUNDS = 30
IDLE_S = 2.0
SETUP_ROUNDS = 200
MICRO_ROUNDS = 20_000
INTERVAL_S = 0.010
GOAL_PCT = 3.0


async def _request(index: int) -> int:
    total = index
    for step in range(AWAITS_PER_REQUEST):
        await asyncio.sleep(0)
        total += sum(range(step * 10))
    return total


async def _batch() -> float:
    """Run REQUESTS short requests, IN_FLIGHT at a time; seconds taken."""
    started = time.perf_counter()
    semaphore = asyncio.Semaphore(IN_FLIGHT)

    async def one(index: int) -> int:
        async with semaphore:
            return await _request(index)

    await asyncio.gather(*(one(index) for index in range(REQUESTS)))
    return time.perf_counter() - started


async def _timed_batch(instrumented: bool) -> float:
    loop = asyncio.get_running_loop()
    detector = BlockingCallDetector()
    monitor = EventLoopLagMonitor()
    if instrumented:
        detector.install(loop)
        monitor.start(loop)
    try:
        return await _batch()
    finally:
        monitor.stop()
        detector.uninstall()


async def _throughput() -> tuple[float, float, float]:
    """(bare seconds, A/A ratio, instrumented ratio), medians."""
    modes = ("bare", "again", "instrumented")
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    await _batch()  # warm up
    for round_index in range(ROUNDS):
        shift = round_index % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            times[mode].append(await _timed_batch(mode == "instrumented"))

    def ratio(mode: str) -> float:
        return statistics.median(b / a for a, b in zip(times["bare"], times[mode], strict=True))

    return statistics.median(times["bare"]), ratio("again"), ratio("instrumented")


async def _idle_cpu(mode: str) -> float:
    """CPU seconds per second of an idle loop."""
    loop = asyncio.get_running_loop()
    detector = BlockingCallDetector()
    monitor = EventLoopLagMonitor()
    handle: asyncio.TimerHandle | None = None

    def tick() -> None:
        nonlocal handle
        handle = loop.call_later(INTERVAL_S, tick)

    if mode == "plain timer":
        tick()
    if mode in ("heartbeat", "heartbeat + watchdog"):
        monitor.start(loop)
    if mode == "heartbeat + watchdog":
        detector.install(loop)
    try:
        await asyncio.sleep(0.1)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(IDLE_S)
        return (time.process_time() - cpu) / (time.perf_counter() - wall)
    finally:
        if handle is not None:
            handle.cancel()
        monitor.stop()
        detector.uninstall()


async def _setup_us(alone: bool) -> float:
    loop = asyncio.get_running_loop()
    holder = BlockingCallDetector()
    if not alone:
        holder.install(loop)
    timings = []
    try:
        for _ in range(SETUP_ROUNDS):
            detector = BlockingCallDetector()
            monitor = EventLoopLagMonitor()
            started = time.perf_counter_ns()
            detector.install(loop)
            monitor.start(loop)
            monitor.stop()
            detector.uninstall()
            timings.append(time.perf_counter_ns() - started)
    finally:
        holder.uninstall()
    return statistics.median(timings) / 1000


def _micro_costs(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> tuple[float, float]:
    """(µs per beat with one lag and one stall listener, µs per healthy watchdog check)."""
    loop = new_loop()
    heartbeat = LoopHeartbeat(loop, run_watchdog=False)
    heartbeat.install()
    monitor = EventLoopLagMonitor()
    detector = BlockingCallDetector()
    heartbeat.add_lag_listener(monitor)
    heartbeat.add_stall_listener(detector)
    watchdog = Watchdog(heartbeat)
    try:
        started = time.perf_counter_ns()
        for _ in range(MICRO_ROUNDS):
            heartbeat.beat()  # each beat also schedules the next (a TimerHandle on the loop)
        beat_us = (time.perf_counter_ns() - started) / MICRO_ROUNDS / 1000
        started = time.perf_counter_ns()
        for _ in range(MICRO_ROUNDS):
            watchdog.poll()
        poll_us = (time.perf_counter_ns() - started) / MICRO_ROUNDS / 1000
    finally:
        heartbeat.uninstall()
        loop.close()
    return beat_us, poll_us


def _run_on(name: str, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> float:
    """Print the figures on one kind of loop; return the throughput ratio (instrumented/bare)."""

    def on_loop(make: Callable[[], Awaitable[Any]]) -> Any:
        loop = new_loop()
        try:
            return loop.run_until_complete(make())
        finally:
            loop.close()

    bare, again, instrumented = on_loop(_throughput)
    cost = (instrumented - 1) * 100
    verdict = "ok" if cost <= GOAL_PCT else "OVER GOAL"
    print(f"{name}:")
    print(
        f"  throughput: {REQUESTS} requests x {AWAITS_PER_REQUEST} awaits, {IN_FLIGHT} in "
        f"flight, bare {bare * 1000:.1f} ms (median of {ROUNDS} rounds)"
    )
    print(
        f"    heartbeat + watchdog {cost:+.2f}% ({verdict}, goal <= {GOAL_PCT:.0f}%); "
        f"A/A noise (bare vs bare) {(again - 1) * 100:+.2f}%"
    )
    beat_us, poll_us = _micro_costs(new_loop)
    beats_per_s, checks_per_s = 1 / INTERVAL_S, 1 / 0.040
    computed = (beats_per_s * beat_us + checks_per_s * poll_us) / 1e6 * 100
    print(
        f"    from its parts: {beat_us:.2f} µs per beat x {beats_per_s:.0f}/s + {poll_us:.2f} µs "
        f"per watchdog check x <= {checks_per_s:.0f}/s = {computed:.3f}% of one core"
    )
    modes = ("bare", "plain timer", "heartbeat", "heartbeat + watchdog")
    idle = {mode: on_loop(functools.partial(_idle_cpu, mode)) for mode in modes}
    print(
        f"  idle CPU over {IDLE_S:.0f} s, % of one core: "
        + ", ".join(f"{mode} {100 * idle[mode]:.3f}%" for mode in modes)
    )
    alone = on_loop(lambda: _setup_us(alone=True))
    shared = on_loop(lambda: _setup_us(alone=False))
    print(
        f"  set-up per request (install + uninstall, median): alone on the loop {alone:.0f} µs "
        f"(heartbeat + watchdog thread start/join), another request holding them {shared:.1f} µs"
    )
    return float(instrumented)


def run() -> list[Result]:
    """Print the figures for asyncio and uvloop; the throughput ratios are the headline."""
    pinned = hasattr(os, "sched_setaffinity")
    if pinned:
        cpus = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cpus)})
    try:
        print("blocking-call detection: heartbeat every 10 ms + watchdog (threshold 100 ms)")
        goal = 1 + GOAL_PCT / 100
        return [
            Result(f"heartbeat + watchdog, throughput on {name}", ratio, goal)
            for name, ratio in (
                ("asyncio", _run_on("asyncio", asyncio.new_event_loop)),
                ("uvloop", _run_on("uvloop", uvloop.new_event_loop)),
            )
        ]
    finally:
        if pinned:
            os.sched_setaffinity(0, cpus)  # other benchmarks may run in this process next


if __name__ == "__main__":
    run()
