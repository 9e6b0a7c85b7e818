"""Group commit for the plain-ASGI doors (devices, SCIM): requests wait for the next turn, and a turn's requests
share one transaction on a lane's thread. What a turn does, and how it falls back when one request fails, is the
door's `serve_turn`."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

Request = TypeVar("Request")


class Turns(Generic[Request]):
    """Requests wait here for the next turn; `lanes` turns run at once (one on SQLite, where writers take turns
    anyway; on PostgreSQL, whose round trips can overlap, as many as the door finds best). A turn takes every
    request waiting, up to MAX_TURN, so turns grow with the load and a lone request goes at once.

    `serve_turn(requests)` runs on a lane's thread and returns each request's outcome, in order: what `serve`
    returns for it, or the exception `serve` raises."""

    MAX_TURN = 64

    def __init__(self, serve_turn: Callable[[list[Request]], list[Any]], *, lanes: int, name: str):
        self._serve_turn = serve_turn
        self._waiting: list[tuple[Request, asyncio.Future]] = []
        self._lanes = lanes
        self._busy = 0
        self._running: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks
        self._threads = ThreadPoolExecutor(lanes, thread_name_prefix=name)

    async def serve(self, request: Request) -> Any:
        loop = asyncio.get_running_loop()
        reply = loop.create_future()
        self._waiting.append((request, reply))
        if self._busy < self._lanes:
            self._busy += 1
            lane = loop.create_task(self._run_lane())
            self._running.add(lane)
            lane.add_done_callback(self._running.discard)
        return await reply

    async def _run_lane(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                turn, self._waiting = self._waiting[:self.MAX_TURN], self._waiting[self.MAX_TURN:]
                try:
                    outcomes = await loop.run_in_executor(self._threads, self._serve_turn,
                                                          [request for request, _ in turn])
                except BaseException as exc:  # the lane itself failed (cancelled, shut down): fail its requests
                    for _, reply in turn:
                        if not reply.done():
                            reply.set_exception(exc if isinstance(exc, Exception) else RuntimeError("stopped"))
                    raise
                for (_, reply), outcome in zip(turn, outcomes):
                    if reply.done():
                        continue  # its client went away
                    if isinstance(outcome, BaseException):
                        reply.set_exception(outcome)
                    else:
                        reply.set_result(outcome)
        finally:
            self._busy -= 1
