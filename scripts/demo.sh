#!/usr/bin/env bash
# README command (a): install, then serve on SQLite with a demo tenant and a simulated fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/bramley serve --demo "$@"
