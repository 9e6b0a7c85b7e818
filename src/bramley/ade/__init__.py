"""Automated Device Enrollment: ADE integrations (server tokens), their devices, and the sync with Apple."""
