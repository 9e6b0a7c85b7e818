"""Connector SDK (issue 7): every Okta Workflows Kandji card as a Python call, against Bramley or any Iru tenant.

    from bramley.connector import connect
    with connect("acme.api.kandji.io", token) as kandji:
        kandji.lock_device(device_id).pin

Imports no server code: it installs and runs on a machine that never runs the server.
"""
from __future__ import annotations

from bramley.connector.cards import Connector
from bramley.connector.catalog import CARDS, CARDS_BY_NAME, DEVICE_FILTERS, Card
from bramley.connector.client import Connection
from bramley.connector.domains import base_url_for
from bramley.connector.errors import (ApiError, AuthenticationFailed, ConnectionFailed, ConnectorError, InvalidInput,
                                      NotFound, Permission, PermissionMissing, RateLimited, ServerError)
from bramley.connector.paging import Stream


def connect(domain: str, token: str, **options) -> Connector:
    """A Connector on a validated connection (see Connection for the options)."""
    return Connector(Connection(domain, token, **options))


__all__ = ["CARDS", "CARDS_BY_NAME", "DEVICE_FILTERS", "ApiError", "AuthenticationFailed", "Card", "Connection",
           "ConnectionFailed", "Connector", "ConnectorError", "InvalidInput", "NotFound", "Permission",
           "PermissionMissing", "RateLimited", "ServerError", "Stream", "base_url_for", "connect"]
