"""The SCIM door's one error type: an HTTP status, a scimType and a detail, rendered as the SCIM Error schema."""
from __future__ import annotations


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail or "error"
        self.scim_type = scim_type
        self.headers = headers or {}

    def body(self) -> dict:
        out = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(self.status)}
        if self.scim_type:
            out["scimType"] = self.scim_type
        out["detail"] = self.detail
        return out


def bad(detail: str, scim_type: str = "invalidValue") -> ScimError:
    return ScimError(400, detail, scim_type)


def not_found(detail: str = "Resource not found") -> ScimError:
    return ScimError(404, detail)
