"""One server per service and database, reused across the cases of a test module."""

from __future__ import annotations

import contextlib
import uuid

from shared.config import AuthSettings
from tests.reliability.rpc import DEFINITIONS
from tests.reliability.worlds import OWNER, SETUP, World
from tests.support import TEST_SECRET, RunningService, bearer, serve

# Audience and issuer set, so that tokens naming the wrong ones can be refused.
AUTH = AuthSettings(secret=TEST_SECRET, audience="draft-services", issuer="https://auth.test")


class Servers:
    """At most one server at a time (each service's store is a process-wide proxy)."""

    def __init__(self, url_for) -> None:
        self._url_for = url_for
        self._stack = contextlib.ExitStack()
        self.service: str | None = None
        self.running: RunningService | None = None
        self.world: World | None = None
        self.memory: dict = {}  # what earlier cases learnt of this server's store

    def get(self, service: str) -> tuple[RunningService, World]:
        if self.service != service:
            self.close()
            self.running = self._stack.enter_context(
                serve(DEFINITIONS[service], self._url_for(service), auth=AUTH)
            )
            self.service = service
            self.refresh()
        return self.running, self.world

    def refresh(self) -> World:
        """New owner's data beside the old, for when a call consumed the old (deleted it)."""
        self.world = SETUP[self.service](
            self.running.channel, bearer(OWNER, auth=AUTH), uuid.uuid4().hex[:8]
        )
        return self.world

    def close(self) -> None:
        self._stack.close()
        self.service = self.running = self.world = None
        self.memory = {}
