"""Shared status calls for the waits of one process (the triggerer's event loop).

One status call lists every job of a series, so the waits on the same series (the same connection,
series and upload kind) share one :class:`SeriesPoller`: it makes one call per poll interval (the
shortest interval of its waits) and hands the answer to every wait, each taking its own jobs from it
(:class:`~capillary_provider.waiting.JobWatch`). Every poller of a connection draws from that
connection's :class:`RequestBudget` (``max_calls_per_minute`` in the connection's extra, default
:data:`DEFAULT_MAX_CALLS_PER_MINUTE`), and a ``Retry-After`` on any call pauses every poller of the
connection. A wait that ends or is cancelled leaves its poller; the poller stops (cutting a call still in
flight, and closing its HTTP session) when its last wait leaves.

This module imports no HTTP library: the hook module is imported in a worker thread by
:func:`new_hook` when the first poller starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow.utils.net import get_hostname

from capillary_provider.exceptions import CapillaryConfigError, CapillaryTransientError
from capillary_provider.kinds import UploadKind

if TYPE_CHECKING:
    from capillary_provider.hooks.capillary import CapillaryHook
    from capillary_provider.jobs import UploadJob

DEFAULT_MAX_CALLS_PER_MINUTE = 60
"""Status calls per minute per connection, for all the waits of a process: well under Capillary's 100."""
BURST = 10
"""Calls a connection may make at once after a quiet spell; at most ``BURST + max_calls_per_minute`` a minute."""
log = logging.getLogger(__name__)
SHARING_ENV = "CAPILLARY_SHARED_POLLING"
"""Set to ``0`` to give every wait its own poller and no budget (the behaviour before sharing; benchmarks)."""


def sharing_enabled() -> bool:
    """Whether waits share pollers and budgets (``CAPILLARY_SHARED_POLLING`` is not ``0``)."""
    return os.environ.get(SHARING_ENV, "1").strip() not in ("0", "false", "False")


async def new_hook(capillary_conn_id: str) -> CapillaryHook:
    """A hook with one attempt per call (the polls are the retries), its module imported off the event loop."""
    module = await asyncio.to_thread(importlib.import_module, "capillary_provider.hooks.capillary")
    hook: CapillaryHook = module.CapillaryHook(capillary_conn_id, retry_limit=1)
    return hook


class RequestBudget:
    """A token bucket of status calls for one connection, shared by its pollers on one event loop.

    :param calls_per_minute: the sustained rate; up to :data:`BURST` calls may go at once.
    """

    def __init__(self, calls_per_minute: float) -> None:
        if calls_per_minute <= 0:
            raise CapillaryConfigError(f"max_calls_per_minute must be positive, not {calls_per_minute}")
        self.rate = calls_per_minute / 60.0
        self.capacity = float(min(BURST, max(1.0, calls_per_minute)))
        self._tokens = self.capacity
        self._loop = asyncio.get_running_loop()
        self._stamp = self._loop.time()
        self._not_before = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """No call on this connection for ``seconds`` (the server's ``Retry-After``)."""
        self._not_before = max(self._not_before, self._loop.time() + seconds)
        self._tokens = 0.0

    async def acquire(self) -> None:
        """Wait for a call's turn: after any pause, and when a token is free."""
        async with self._lock:
            while True:
                now = self._loop.time()
                if now < self._not_before:
                    await asyncio.sleep(self._not_before - now)
                    continue
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate)


@dataclass(eq=False)
class Subscription:
    """One wait's share of a poller: the answers made after it joined, the latest first."""

    interval: float
    _answer: tuple[list[UploadJob] | None, BaseException | None] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def deliver(self, jobs: list[UploadJob] | None, error: BaseException | None) -> None:
        self._answer = (jobs, error)
        self._ready.set()

    async def next(self) -> list[UploadJob]:
        """The next answer: every job of the series, or the exception the status call raised."""
        await self._ready.wait()
        self._ready.clear()
        assert self._answer is not None
        jobs, error = self._answer
        self._answer = None
        if error is not None:
            raise error
        assert jobs is not None
        return jobs


class SeriesPoller:
    """One status call per interval for every wait on a series; see the module's description."""

    def __init__(self, registry: _Registry, key: tuple[str, str, str, int], kind: UploadKind) -> None:
        self.registry, self.key, self.kind = registry, key, kind
        self.subscriptions: set[Subscription] = set()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"capillary-poller-{self.key[1]}")

    async def _run(self) -> None:
        conn_id, series_id = self.key[0], self.key[1]
        hook: CapillaryHook | None = None
        try:
            hook = await new_hook(conn_id)
            budget = await self.registry.budget(conn_id, hook) if sharing_enabled() else None
            while self.subscriptions:
                if budget is not None:
                    await budget.acquire()
                jobs: list[UploadJob] | None = None
                error: BaseException | None = None
                after: float | None = None
                try:
                    jobs = await hook.aget_upload_jobs(series_id, self.kind)
                except Exception as exc:
                    error = exc
                    after = exc.retry_after if isinstance(exc, CapillaryTransientError) else None
                    if budget is not None and after:
                        budget.pause(after)
                self._deliver(jobs, error)
                interval = min((s.interval for s in self.subscriptions), default=0.0)
                await asyncio.sleep(interval if budget is not None else max(interval, after or 0.0))
        except Exception as exc:  # no hook, or a connection this poller cannot use: every wait hears it
            self._deliver(None, exc)
        finally:
            if hook is not None:
                hook.abort()  # a call still in flight (in a thread) is cut, not waited for

    def _deliver(self, jobs: list[UploadJob] | None, error: BaseException | None) -> None:
        for subscription in list(self.subscriptions):
            subscription.deliver(jobs, error)

    def leave(self, subscription: Subscription) -> None:
        """Take a wait out; the last one out stops the poller."""
        self.subscriptions.discard(subscription)
        if not self.subscriptions:
            if self.registry.pollers.get(self.key) is self:
                del self.registry.pollers[self.key]
            if self.task is not None and not self.task.done():
                self.task.cancel()


class _Registry:
    """The pollers and budgets of one event loop."""

    def __init__(self) -> None:
        self.pollers: dict[tuple[str, str, str, int], SeriesPoller] = {}
        self.budgets: dict[str, RequestBudget] = {}

    async def budget(self, conn_id: str, hook: CapillaryHook) -> RequestBudget:
        if conn_id not in self.budgets:
            connection = await hook.aconnection()
            # An empty field of the connection form means the default, like an absent key.
            value = connection.extra_dejson.get("max_calls_per_minute") or DEFAULT_MAX_CALLS_PER_MINUTE
            try:
                per_minute = float(value)
            except (TypeError, ValueError):
                raise CapillaryConfigError(
                    f"Connection {conn_id!r}: the extra 'max_calls_per_minute' must be a number, not {value!r}"
                ) from None
            if conn_id not in self.budgets:
                self.budgets[conn_id] = RequestBudget(per_minute)
                _log_budget(conn_id, per_minute)
        return self.budgets[conn_id]


def _log_budget(conn_id: str, per_minute: float) -> None:
    """Say which process this budget belongs to: Capillary's limit is per API key, the budget per process.

    Every triggerer process keeps its own budget, so N triggerers on one key make up to N times as many
    calls; the host name (Airflow's, as its UI shows it) and the pid tell the budgets of a deployment apart.
    """
    log.info(
        "Status-call budget of connection %r for this process only (host %s, pid %d): %g calls a minute, "
        "bursts of up to %d; other processes on the same API key keep budgets of their own",
        conn_id,
        get_hostname(),  # type: ignore[no-untyped-call]  # untyped in Airflow
        os.getpid(),
        per_minute,
        min(BURST, max(1, int(per_minute))),
    )


_REGISTRIES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Registry] = weakref.WeakKeyDictionary()


def registry() -> _Registry:
    """The pollers and budgets of the running event loop."""
    loop = asyncio.get_running_loop()
    if loop not in _REGISTRIES:
        _REGISTRIES[loop] = _Registry()
    return _REGISTRIES[loop]


def drop_registry() -> None:
    """Forget the running event loop's pollers and budgets: a wait that ran on a loop of its own (in a
    worker) ends with its loop, and its budget would keep the closed loop, and itself, alive."""
    _REGISTRIES.pop(asyncio.get_running_loop(), None)


@contextlib.asynccontextmanager
async def subscribe(
    capillary_conn_id: str, coupon_series_id: str, kind: UploadKind, interval: float
) -> AsyncIterator[Subscription]:
    """Join the poller of (connection, series, kind), starting it if needed; leave it on exit."""
    subscription = Subscription(interval=float(interval))
    reg = registry()
    key = (capillary_conn_id, str(coupon_series_id), kind.name, 0 if sharing_enabled() else id(subscription))
    poller = reg.pollers.get(key)
    if poller is None:
        poller = reg.pollers[key] = SeriesPoller(reg, key, kind)
        poller.subscriptions.add(subscription)
        poller.start()
    else:
        poller.subscriptions.add(subscription)
    try:
        yield subscription
    finally:
        poller.leave(subscription)


__all__ = [
    "DEFAULT_MAX_CALLS_PER_MINUTE",
    "RequestBudget",
    "SeriesPoller",
    "Subscription",
    "drop_registry",
    "new_hook",
    "sharing_enabled",
    "subscribe",
]
