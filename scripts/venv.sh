#!/usr/bin/env bash
# Creates (or reuses) the project's virtualenv in .venv and installs Yunguan
# into it, editable, with the given extras ("" or "test"). Shared by run.sh
# and test.sh so both commands install the same way.
#
# Reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

need_python() {
    command -v python3 >/dev/null || return 1
    python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || return 1
    python3 -c 'import venv, ensurepip' 2>/dev/null || return 1
}

if ! need_python; then
    # A fresh Debian 12 has python3 3.11 but not always venv/ensurepip.
    echo "[venv] installing python3, python3-venv (apt)" >&2
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
        python3 python3-venv python3-dev gcc >/dev/null
    need_python || { echo "error: Python >= 3.11 with venv is required" >&2; exit 1; }
fi

stamp_value="$(sha256sum pyproject.toml | cut -c1-16)-${extras}"
stamp=.venv/.yunguan-installed
if [[ -x .venv/bin/python && -f $stamp && "$(cat $stamp)" == "$stamp_value" ]]; then
    exit 0
fi
[[ -x .venv/bin/python ]] || python3 -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
target="."
[[ -n "$extras" ]] && target=".[$extras]"
echo "[venv] pip install -e '$target'" >&2
.venv/bin/python -m pip install -q -e "$target"
echo "$stamp_value" >"$stamp"
