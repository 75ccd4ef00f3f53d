"""Named crash points for fault-injection tests of the commit protocol.

Setting SYNC_PLATFORM_CRASHPOINT=<name> makes the process kill itself (SIGKILL: no
cleanup, no rollback handlers) when it reaches that point, which is how the tests prove a
crash cannot separate a sync's data from its cursor. Unset in production, it costs one
environment lookup.
"""

from __future__ import annotations

import os
import signal

from sync_platform.settings import CRASHPOINT_ENV


def crashpoint(name: str) -> None:
    if os.environ.get(CRASHPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
