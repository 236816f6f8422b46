"""A consumer bootstep that restarts the worker's broker consumer when it has gone deaf.

Celery and kombu have a long-standing bug (celery#8030, #8091, #10205, #10302; still seen with 5.6.3): after a
Redis connection is lost and re-established, a worker may log "Connected" yet never fetch again, while its
queue fills. Its process stays up, so no supervisor notices. The watchdog sees it from outside the consumer:
tasks waiting in a queue this worker consumes, a free slot to run one, and nothing taken for `consumer_stall_s`.
It then raises a connection error inside the event loop, which is what Celery's own reconnect path answers:
the consumer's blueprint restarts and registers its queues again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import bootsteps
from celery.signals import task_received
from celery.worker import state

logger = logging.getLogger(__name__)

_received = [0]  # task messages this worker's consumer has taken since it started


@task_received.connect  # type: ignore[untyped-decorator]  # Celery's signals are untyped
def _count_received(**_: Any) -> None:
    _received[0] += 1


class ConsumerStalled(redis.exceptions.ConnectionError):
    """The consumer took nothing while tasks waited and it had room: restarted as after a lost connection."""


@dataclass
class StallWatch:
    """Decides, from periodic observations, whether a consumer has stopped taking work it has room for."""

    stall_s: float
    _since: float | None = field(default=None, init=False)  # when work first waited with a slot free, unserved
    _received: int = field(default=-1, init=False)

    def observe(self, now: float, *, waiting: int, free_slot: bool, received: int) -> bool:
        """True when tasks have waited `stall_s` for a free slot and nothing was received meanwhile."""
        starved = waiting > 0 and free_slot
        if not starved or received != self._received:
            self._since = now if starved else None
            self._received = received
            return False
        if self._since is None:
            self._since = now
        if now - self._since < self.stall_s:
            return False
        self._since = None  # one restart per stall; the next window starts after it
        return True


class ConsumerWatchdog(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery is untyped
    """Checks every third of `consumer_stall_s` whether the consumer should have taken a task and did not."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.timer_entry: Any = None
        self.probe: Any = None  # a broker connection of its own: the consumer's may be the broken one

    def start(self, c: Any) -> None:
        stall_s = c.app.conf.videoapi_settings.consumer_stall_s
        self.stop(c)  # a restarted blueprint starts its steps again
        if stall_s <= 0:
            return
        watch = StallWatch(stall_s)
        # one connection attempt per check (no retries inside the event loop): an outage is Celery's to handle
        self.probe = c.app.connection_for_read(transport_options={"max_retries": 0})
        self.timer_entry = c.timer.call_repeatedly(max(1.0, stall_s / 3), self.check, (c, watch))

    def stop(self, c: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None
        if self.probe is not None:
            self.probe.release()
            self.probe = None

    shutdown = stop

    def check(self, c: Any, watch: StallWatch) -> None:
        if state.should_stop is not None or state.should_terminate is not None:
            return  # shutting down: the consumer stopped taking tasks on purpose
        queues = [queue.name for queue in (c.task_consumer.queues if c.task_consumer else [])]
        if not queues:
            return  # cancelled on purpose (a drain, `celery control cancel_consumer`)
        try:
            channel = self.probe.default_channel
            waiting = sum(channel.queue_declare(queue=name).message_count for name in queues)
        except Exception as exc:  # the broker unreachable: Celery's own reconnect answers that
            logger.warning("consumer watchdog could not size %s: %s", queues, exc)  # blind meanwhile: said
            self.probe.collect()
            return
        limit = c.qos.value  # prefetch limit: concurrency x worker_prefetch_multiplier (0: none)
        free_slot = not limit or len(state.reserved_requests) < limit
        if watch.observe(time.monotonic(), waiting=waiting, free_slot=free_slot, received=_received[0]):
            logger.error(
                "consumer took no task for %.0fs while %d waited in %s and it had room: restarting it",
                watch.stall_s,
                waiting,
                ",".join(queues),
            )
            raise ConsumerStalled(f"consumer stalled: {waiting} task(s) waiting in {','.join(queues)}")
