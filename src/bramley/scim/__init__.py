"""SCIM 2.0 door (issue 6): directory integrations, /api/v1/scim/Users and /Groups, request log."""
