#!/usr/bin/env bash
# The README's second command: install what the tests need (Debian packages,
# services that are not already running, the virtualenv) and run every check:
# ruff, mypy --strict, import-linter and the whole pytest suite.
#
# pytest's exit code 5 ("no tests collected") fails the run like any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/testbed/lib.sh
TB_NAME=test

tb_apt_install python3-venv python3-dev gcc curl postgresql-client
bash scripts/venv.sh test

bash scripts/testbed/postgres.sh up
eval "$(bash scripts/testbed/postgres.sh env)"
export YUNGUAN_TEST_POSTGRES_URL

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy --strict"
.venv/bin/mypy
echo "== import-linter"
.venv/bin/lint-imports

echo "== pytest"
set +e
.venv/bin/pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit $rc
