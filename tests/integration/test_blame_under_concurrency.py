"""Whose blocking call is it? Back-to-back stalls of overlapping requests, through real uvicorn.

One request stays in flight (awaiting), then several requests block the loop one after the
other with ``time.sleep``, released together so that their blocks follow each other in the same
loop iteration, with no heartbeat between them. Every blocking request must be blamed for its
own stall (at its own line), never for another's; the one in flight suffers each of them and
names the right culprit. Some handlers return right after blocking (their request ends between
two stalls), others await once more first (the next stall starts before they end): the two
shapes that misattributed before.
"""

from __future__ import annotations

# Blocking the loop from async code is exactly what these tests do.
# ruff: noqa: ASYNC251
import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from debug_toolbar.asgi import REQUEST_ID_HEADER, DebugToolbarMiddleware
from debug_toolbar.asgi.types import Receive, Scope, Send
from debug_toolbar.core.config import DebugToolbarConfig
from debug_toolbar.core.panels.async_profiler import AsyncProfilerPanel
from support import ProcessPauses, Rendezvous

BLOCKERS = 6
ROUNDS = 5
BLOCK_LINE = next(
    n
    for n, text in enumerate(Path(__file__).read_text().splitlines(), 1)
    if text.rstrip().endswith("# the handler blocks here")
)


class BlockingApp:
    """``/hold`` awaits until the round's blockers are done; ``/block`` waits for the others of
    its round, then blocks for ``ms`` milliseconds (and, with ``then=await``, awaits once more
    before answering)."""

    def __init__(self) -> None:
        self.rendezvous: dict[str, Rendezvous] = {}
        self.finished: dict[str, int] = {}
        self.all_done: dict[str, asyncio.Event] = {}

    def _done(self, round_id: str) -> asyncio.Event:
        return self.all_done.setdefault(round_id, asyncio.Event())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        round_id = query.get("round", "")
        if scope["path"] == "/hold":
            await asyncio.wait_for(self._done(round_id).wait(), timeout=20)
        elif scope["path"] == "/block":
            meeting = self.rendezvous.setdefault(round_id, Rendezvous(BLOCKERS))
            await meeting.wait()
            time.sleep(int(query["ms"]) / 1000)  # the handler blocks here
            if query.get("then") == "await":
                await asyncio.sleep(0)
            self.finished[round_id] = self.finished.get(round_id, 0) + 1
            if self.finished[round_id] == BLOCKERS:
                self._done(round_id).set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def pauses() -> Iterator[ProcessPauses]:
    with ProcessPauses() as watcher:
        yield watcher


def summary(calls: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Blocking calls in a failure message: relation, culprit, start, duration, file:line."""
    return [
        (
            c["relation"],
            c["culprit"]["request_id"] if isinstance(c["culprit"], dict) else c["culprit"],
            round(c["start_ms"], 1),
            round(c["duration_ms"], 1),
            f"{Path(c['filename'] or '?').name}:{c['lineno']}",
        )
        for c in calls
    ]


def async_stats(api: httpx.Client, request_id: str) -> tuple[dict[str, Any], float]:
    record = api.get(f"/_debug_toolbar/api/requests/{request_id}").json()
    assert record["panel_errors"] == {}
    return record["panels"]["AsyncProfilerPanel"], record["started_at"]


class TestBackToBackStallsOfOverlappingRequests:
    @pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
    @pytest.mark.parametrize("threshold_ms", [100.0, 15.0])
    def test_every_blocking_request_is_blamed_for_its_own_stall(
        self,
        uvicorn_server: Callable[..., Any],
        pauses: ProcessPauses,
        loop: str,
        threshold_ms: float,
    ) -> None:
        config = DebugToolbarConfig(
            panels=[AsyncProfilerPanel],
            async_profiler_backend="taskfactory",
            async_blocking_threshold_ms=threshold_ms,
        )
        server = uvicorn_server(DebugToolbarMiddleware(BlockingApp(), config), loop=loop)
        with httpx.Client(base_url=server.url, timeout=30) as api:
            for round_number in range(ROUNDS):
                self.check_round(server.url, api, pauses, f"{loop}-{round_number}", threshold_ms)

    def check_round(
        self,
        url: str,
        api: httpx.Client,
        pauses: ProcessPauses,
        round_id: str,
        threshold_ms: float,
    ) -> None:
        block_ms = [150 + 20 * i for i in range(BLOCKERS)]  # 150 .. 250 ms

        async def send_all() -> tuple[httpx.Response, list[httpx.Response]]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                holding = asyncio.ensure_future(client.get("/hold", params={"round": round_id}))
                await asyncio.sleep(0.05)  # the held request is in flight first
                blocking = [
                    client.get(
                        "/block",
                        params={
                            "round": round_id,
                            "ms": ms,
                            "then": "await" if i % 2 else "return",
                        },
                    )
                    for i, ms in enumerate(block_ms)
                ]
                done = await asyncio.gather(*blocking)
                return await holding, list(done)

        held, blockers = asyncio.run(send_all())
        assert [held.status_code, *(r.status_code for r in blockers)] == [200] * (BLOCKERS + 1)
        blocker_ids = {r.headers[REQUEST_ID_HEADER] for r in blockers}

        unseen_ids: set[str] = set()
        for response, ms in zip(blockers, block_ms, strict=True):
            request_id = response.headers[REQUEST_ID_HEADER]
            stats, started_at = async_stats(api, request_id)
            calls = [
                c
                for c in stats["blocking_calls"]
                if not pauses.explains(started_at, c, threshold_ms)
            ]
            own = [c for c in calls if c["culprit"] is True and c["lineno"] == BLOCK_LINE]
            if own:
                assert len(own) == 1, (round_id, ms, summary(calls))
                assert own[0]["filename"] == __file__
                # Split where the running request changed: within a resampling period of the
                # truth (5 ms; more when a starved machine delays the watchdog's thread).
                assert ms - 30 <= own[0]["duration_ms"] <= ms + 60, (round_id, ms, own)
            else:
                # Either the process was paused during the block (the call is then explained
                # away above, but is still there, its own), or the watchdog's thread did not
                # run at all during it (a starved machine): the stretch is then "unknown" for
                # everyone, never another's.
                reported = stats["blocking_calls"]
                paused_own = [
                    c for c in reported if c["culprit"] is True and c["lineno"] == BLOCK_LINE
                ]
                unseen = [
                    c
                    for c in reported
                    if c["relation"] == "unknown" and c["duration_ms"] >= ms - 30
                ]
                assert len(paused_own) == 1 or unseen, (round_id, ms, summary(reported))
                unseen_ids.add(request_id)
            # Anything else of its own is the starved machine's, at a 15 ms threshold: short.
            others = [c for c in calls if c["culprit"] is True and c["lineno"] != BLOCK_LINE]
            assert all(c["duration_ms"] < 3 * threshold_ms for c in others), (round_id, others)
            # The badge counts the same calls (a paused process may add one at 15 ms).
            assert stats["summary"]["blocking_calls"] == sum(
                1 for c in stats["blocking_calls"] if c["culprit"] is True
            )
            for call in calls:
                if isinstance(call["culprit"], dict):
                    # Another blocking request, or none (the server's own work between two
                    # steps, or this process's client thread holding the GIL: real stalls at
                    # a 15 ms threshold), never this request.
                    culprit = call["culprit"]["request_id"]
                    assert culprit in blocker_ids | {None}, (round_id, call)
                    assert culprit != request_id, (round_id, call)

        stats, started_at = async_stats(api, held.headers[REQUEST_ID_HEADER])
        reported = stats["blocking_calls"]
        # Its own work may stall a loaded machine briefly at 15 ms (its record is built after
        # its response), never for as long as a blocker, never at the blocking line.
        held_own = [c for c in reported if c["culprit"] is True]
        assert stats["summary"]["blocking_calls"] == len(held_own), (round_id, summary(reported))
        assert all(
            c["lineno"] != BLOCK_LINE and c["duration_ms"] < 3 * threshold_ms for c in held_own
        ), (round_id, summary(reported))
        suffered = [
            c
            for c in reported
            if c["culprit"] is not True and not pauses.explains(started_at, c, threshold_ms)
        ]
        culprits = [
            c["culprit"]["request_id"]
            for c in suffered
            if isinstance(c["culprit"], dict) and c["culprit"]["request_id"] is not None
        ]
        # Only the blockers are ever named, and each of them unless the process was paused
        # meanwhile (a stall the pause explains is not counted above) or the watchdog never
        # saw its block. A blocker may be named twice at 15 ms: its task also builds its
        # record after the response, a second step.
        assert set(culprits) <= blocker_ids, (round_id, suffered)
        if not pauses.pauses:
            assert blocker_ids - unseen_ids <= set(culprits), (round_id, suffered)
