"""A logging handler that signals its own process when a given message is logged.

Lets a test put a stop signal at an exact point of a server subprocess's work
(the moment the line is logged) instead of hoping a timed `kill` lands there.
Configured through `--log-config` (dictConfig's `()` factory).
"""

from __future__ import annotations

import logging
import os
import signal


class SignalOnMessage(logging.Handler):
    """Send `signal_name` to this process the first time a record contains `text`."""

    def __init__(self, text: str, signal_name: str = "SIGTERM") -> None:
        super().__init__()
        self.text = text
        self.signum = signal.Signals[signal_name]
        self.sent = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.sent and self.text in record.getMessage():
            self.sent = True
            os.kill(os.getpid(), self.signum)
