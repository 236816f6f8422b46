"""Supervision of the local stack's processes: one that dies is reported and restarted, with a back-off."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Supervised:
    """A part of the stack: how to tell it is alive and how to start it again."""

    name: str
    alive: Callable[[], bool]
    restart: Callable[[], None]
    restarts: int = 0
    down_since: float | None = None
    next_try: float = 0.0


@dataclass
class Supervisor:
    """Checks every part every `interval_s`; a dead one is restarted after 1, 2, 4... s (at most `max_backoff_s`)."""

    on_status: Callable[[str], None] = print
    interval_s: float = 1.0
    max_backoff_s: float = 30.0
    parts: list[Supervised] = field(default_factory=list)
    _degraded: bool = field(default=False, init=False, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def watch(self, name: str, alive: Callable[[], bool], restart: Callable[[], None]) -> None:
        self.parts.append(Supervised(name, alive, restart))

    @property
    def ready(self) -> bool:
        """True only while every part is alive: the stack never shows ready over a dead part."""
        return all(part.alive() for part in self.parts)

    def check(self) -> None:
        """One pass: report newly dead parts, restart those whose back-off has passed."""
        now = time.monotonic()
        up = True
        for part in self.parts:
            if part.alive():
                if part.down_since is not None:
                    part.down_since = None
                continue
            up = False
            if part.down_since is None:
                self._degraded = True
                part.down_since = now
                part.next_try = now + min(self.max_backoff_s, 2.0**part.restarts - 1)
                self.on_status(f"{part.name} died: not ready; restarting it (restart {part.restarts + 1})")
            if now < part.next_try:
                continue
            part.restarts += 1
            try:
                part.restart()
                self.on_status(f"{part.name} restarted")
                part.down_since = None
            except Exception as exc:  # a restart that fails is tried again after a longer back-off
                part.next_try = now + min(self.max_backoff_s, 2.0**part.restarts)
                self.on_status(f"{part.name} failed to restart: {exc}")
        if self._degraded and up and self.ready:
            self._degraded = False
            self.on_status("every part is up again: ready")

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.check()

    def start(self) -> Supervisor:
        self._thread = threading.Thread(target=self._run, daemon=True, name="stack-supervisor")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (before the stack stops its parts, so that none is restarted while stopping)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 5)
