#!/usr/bin/env bash
# README command (b): install everything, then run the whole test suite (SQLite unless BRAMLEY_DATABASE_URL is set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh openssl  # the SCEP interop test checks our CertRep with the OpenSSL CLI
# One pytest-xdist worker per core (PostgreSQL: a database per worker, see tests/conftest.py); `-n 0` runs serially.
exec .venv/bin/python -m pytest -n auto "$@"
