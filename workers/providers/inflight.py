"""Model calls that a cancel can abort while they are in flight, each within a time limit.

The SDK-backed providers call the SDKs' async clients on an event loop owned by the calling
thread. A blocking SDK call cannot be interrupted from another thread, but a task on a loop
can: a stopped ``CancelToken`` cancels the call's task, and cancelling it closes the HTTP
connection the call was using. Each thread keeps its loop and its async clients (one per client
settings) for later calls, so those calls reuse the thread's open connections; a client is
only ever used on the loop of the thread that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from workers.execution.cancellation import Cancelled, CancelToken
from workers.providers.base import ProviderError

T = TypeVar("T")

# Clients with other settings (another base_url, key or timeout) are rare in one worker; past
# this many, the least recently used one is closed so a thread does not hoard connections.
MAX_CLIENTS_PER_THREAD = 8


class AsyncClient(Protocol):
    """What this module needs of an SDK's async client."""

    async def close(self) -> None: ...


class _ThreadState(threading.local):
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: OrderedDict[Hashable, Any] = OrderedDict()


_THREAD = _ThreadState()


def _forget_parent_state() -> None:
    # A forked child (a Celery prefork worker) must not touch its parent's loop or pooled
    # connections: their file descriptors are shared with the parent.
    global _THREAD
    _THREAD = _ThreadState()


os.register_at_fork(after_in_child=_forget_parent_state)


def _thread_loop() -> asyncio.AbstractEventLoop:
    if _THREAD.loop is None or _THREAD.loop.is_closed():
        _THREAD.loop = asyncio.new_event_loop()
    return _THREAD.loop


def thread_client(key: Hashable, make: Callable[[], T]) -> T:
    """The calling thread's client for ``key``, made by ``make`` on first use. The client is
    for calls through ``run`` in this same thread only."""
    clients = _THREAD.clients
    if key in clients:
        clients.move_to_end(key)
        client: T = clients[key]
        return client
    client = clients[key] = make()
    while len(clients) > MAX_CLIENTS_PER_THREAD:
        _, evicted = clients.popitem(last=False)
        # The loop is not running between calls, so the old client's connections can be
        # closed here, on the loop they belong to.
        _thread_loop().run_until_complete(_close_quietly(evicted))
    return client


async def _close_quietly(client: AsyncClient) -> None:
    # A connection that fails to close politely is dropped all the same.
    with contextlib.suppress(Exception):
        await client.close()


_SENDING: ContextVar[Callable[[], None] | None] = ContextVar("ao_sending", default=None)


@contextlib.contextmanager
def when_sent(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` as each request of this block is sent (``run`` starts it): what a
    pool counts from, after the client was made and the SDK imported."""
    reset = _SENDING.set(callback)
    try:
        yield
    finally:
        _SENDING.reset(reset)


def run(
    surface: str,
    request: Callable[[], Awaitable[T]],
    cancel: CancelToken,
    timeout_s: float,
) -> T:
    """Await ``request()`` on this thread's loop and return its result.

    Raises ``Cancelled(cancel.reason)`` if ``cancel`` is stopped before or during the call; a
    stop from another thread aborts the call at once, closing its connection. Raises
    ``ProviderError("<surface>: model call timed out after N s")`` if the call takes longer
    than ``timeout_s`` (its connection is closed too). Anything else ``request()`` raises is
    raised unchanged, for the caller to translate.
    """
    cancel.check()
    sending = _SENDING.get()
    if sending is not None:
        sending()
    loop = _thread_loop()

    timer: asyncio.Timeout | None = None

    async def bounded() -> T:
        nonlocal timer
        timer = asyncio.timeout(timeout_s)
        async with timer:
            return await request()

    task = loop.create_task(bounded())

    def abort() -> None:
        # The token's callbacks run in the thread that stops it, so the cancel is handed to
        # this loop; if the call has ended by then, cancelling a finished task does nothing.
        loop.call_soon_threadsafe(task.cancel)

    unregister = cancel.on_cancel(abort)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if cancel.cancelled:
            raise Cancelled(cancel.reason) from None
        raise
    except TimeoutError:
        if timer is None or not timer.expired():
            raise  # not our limit: a TimeoutError of the request's own
        raise ProviderError(f"{surface}: model call timed out after {timeout_s:g} s") from None
    finally:
        unregister()
        if not task.done():
            # Only when this thread was interrupted (KeyboardInterrupt...): end the call now,
            # else it would resume inside this thread's next call.
            task.cancel()
            loop.run_until_complete(asyncio.wait([task]))
