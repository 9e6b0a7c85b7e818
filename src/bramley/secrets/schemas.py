"""Wire shapes of the Iru secret endpoints (reference §3.2): 200 with null when nothing is stored."""
from __future__ import annotations

from pydantic import BaseModel


class BypassCode(BaseModel):
    user_based_albc: str | None
    device_based_albc: str | None


class FileVaultKey(BaseModel):
    key: str | None


class UnlockPin(BaseModel):
    pin: str | None


class RecoveryPassword(BaseModel):
    recovery_password: str | None
