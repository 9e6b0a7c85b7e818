"""Connector SDK (issue 7): every Okta Workflows Kandji card as a Python call. Imports no server code."""
