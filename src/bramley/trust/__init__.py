"""Device trust (issue 8): agent check-in, the verification rule, and the sync client."""
