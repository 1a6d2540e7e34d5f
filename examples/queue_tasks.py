"""The task functions of `examples.queue_app`: what the worker imports, by name.

They live apart from the web app so that the worker imports this module only,
never the app, its routes or its settings.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging

logger = logging.getLogger("examples.queue")


@dataclasses.dataclass
class Signup:
    email: str
    at: datetime.datetime


def send_welcome(signup: Signup) -> None:
    # Rebuilt from JSON on the worker: a real Signup, with a real datetime.
    logger.info("welcome mail to %s (signed up at %s)", signup.email, signup.at.isoformat())


async def update_crm(email: str) -> None:
    logger.info("CRM updated for %s", email)
