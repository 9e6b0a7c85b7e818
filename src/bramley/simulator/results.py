"""What a simulated device's answers are made of: statuses, ErrorChains, and what it knows when answering."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

DOMAIN = "MCMDMErrorDomain"
UNKNOWN_REQUEST = 12021
NOT_SUPPORTED = 12029  # illustrative: "not supported on this device / channel"
NOT_SUPERVISED = 12030  # illustrative
NO_RIGHTS = 12024  # illustrative: the MDM payload's AccessRights lack the bit
BAD_UNLOCK_TOKEN = 12009  # illustrative
UNKNOWN_USER = 12080  # illustrative
NOT_IN_LOST_MODE = 12067
LOCATION_UNKNOWN = 12068


@dataclass
class Context:
    """What the answering device knows besides its state: its channel, its rights, its dice."""

    rng: random.Random = field(default_factory=random.Random)
    access_rights: int = 8191
    user_channel: bool = False
    not_now_probability: float = 0.0
    not_now_next: int = 0  # force NotNow for the next N (non-urgent) commands
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)



def ack(**keys: Any) -> dict:
    return {"Status": "Acknowledged", **keys}


def error(code: int, text: str, domain: str = DOMAIN) -> dict:
    return {"Status": "Error", "ErrorChain": [{"ErrorCode": code, "ErrorDomain": domain,
                                               "LocalizedDescription": text, "USEnglishDescription": text}]}


def format_error() -> dict:
    return {"Status": "CommandFormatError"}
