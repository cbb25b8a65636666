#!/usr/bin/env bash
# The README's first command: install Yunguan into .venv and run the embedded
# all-in-one control plane (SQLite, in-process worker, sample 1+1+N+14 topology)
# on http://127.0.0.1:8080. Extra arguments go to `yunguan up`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
exec .venv/bin/yunguan up "$@"
