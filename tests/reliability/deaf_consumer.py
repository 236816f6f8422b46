"""Imported by a test's worker only (`celery worker -I`): a control command that makes its consumer deaf.

It cancels the task queues' consumers in the transport (kombu's channel) while Celery still believes it consumes
them: the state a worker is left in by the Celery/kombu reconnect bug the consumer watchdog answers.
"""

from __future__ import annotations

from typing import Any

from celery.worker.control import control_command


@control_command()  # type: ignore[untyped-decorator]  # Celery's registry is untyped
def test_deafen_consumer(state: Any) -> dict[str, list[str]]:
    """Stop the transport fetching the task queues; Celery's own record of them is left as it was."""
    consumer = state.consumer.task_consumer
    for tag in list(consumer._active_tags.values()):
        consumer.channel.basic_cancel(tag)
    return {"ok": [queue.name for queue in consumer.queues]}
