"""Domain errors. They carry no HTTP status: each door (Iru API, SCIM, MDM) maps them once."""
from __future__ import annotations


class BramleyError(Exception):
    pass


class NotFound(BramleyError):
    """The object does not exist for this tenant (another tenant's object included)."""


class Conflict(BramleyError):
    """A uniqueness rule would be broken."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class InvalidField(BramleyError):
    """Field validation: rendered by the Iru door as {"field": ["message", ...]}."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(str(errors))
        self.errors = errors


class RuleViolation(BramleyError):
    """A business rule refused the request: rendered as a list of messages."""

    def __init__(self, *messages: str):
        super().__init__("; ".join(messages))
        self.messages = list(messages)


class ActionRefused(BramleyError):
    """A device action was refused: rendered as a bare JSON string, as Iru does."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class DetailError(BramleyError):
    """A refusal Iru reports as {"detail": "..."}."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail
