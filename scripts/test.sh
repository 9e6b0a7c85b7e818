#!/usr/bin/env bash
# README command (b): install everything, then run the whole test suite (SQLite unless BRAMLEY_DATABASE_URL is set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh openssl  # the SCEP interop test checks our CertRep with the OpenSSL CLI
exec .venv/bin/python -m pytest "$@"
