#!/usr/bin/env bash
# Kubernetes testbed: a real etcd + kube-apiserver + kube-controller-manager on
# 127.0.0.1, for the Kubernetes adapter's contract tests.
#
#   scripts/testbed/kubernetes.sh up       # build once (cached), start, wait for /readyz
#   scripts/testbed/kubernetes.sh status   # exit 0 only when all three answer
#   scripts/testbed/kubernetes.sh env      # eval-able: KUBECONFIG and the context names
#   scripts/testbed/kubernetes.sh down [--wipe]   # stop our PIDs; --wipe also drops etcd data
#   scripts/testbed/kubernetes.sh build    # only fill the binary cache (CI pre-warm)
#
# Why a source build: no registry we can reach ships a kube-apiserver binary.
# Debian 12's `kubernetes` source package is the full upstream v1.20.2 tree
# with vendor/, and it builds with Debian's Go 1.19 (~6 min on 2 cores). The
# two binaries are cached outside the repository and never committed.
#
# There is no scheduler, kubelet or kube-proxy: tests create Node objects
# through the API, and Pods stay Pending. See kubernetes_smoke.py.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

KUBE_VERSION="v1.20.2"
# Debian ships the 1.20.2 tree under a "really" version; any security
# update of it (deb12uN) is still 1.20.2 and is accepted.
KUBE_DEB_UPSTREAM="1.20.5+really1.20.2"
KUBE_BIN_DIR="${YUNGUAN_KUBE_BIN_DIR:-$YUNGUAN_CACHE/kube/$KUBE_VERSION}"
KUBE_BUILD_DIR="$YUNGUAN_CACHE/kube/build-$KUBE_VERSION"
# The build shares 2 cores with other CI steps: 2 Go jobs at low priority keep
# the wall time near 6 min while anything else running still gets the CPU first.
KUBE_BUILD_JOBS="${YUNGUAN_KUBE_BUILD_JOBS:-2}"

# Ports off the defaults (2379/6443/10257), so a developer's own cluster or
# another testbed on the machine does not collide with this one.
ETCD_PORT="${YUNGUAN_KUBE_ETCD_PORT:-12379}"
ETCD_PEER_PORT="${YUNGUAN_KUBE_ETCD_PEER_PORT:-12380}"
APISERVER_PORT="${YUNGUAN_KUBE_APISERVER_PORT:-16443}"
CM_PORT="${YUNGUAN_KUBE_CM_PORT:-16257}"

CONTEXT_ADMIN="testbed-admin"
CONTEXT_NORIGHTS="testbed-norights"
# Only an allocation range for Service objects; nothing is routed.
SERVICE_CIDR="10.250.0.0/24"
SERVICE_ACCOUNT_ISSUER="https://kubernetes.default.svc"

tb_init kubernetes
ETC="$TB_HOME/etc"
KUBECONFIG_FILE="$ETC/kubeconfig"
CM_KUBECONFIG="$ETC/controller-manager.kubeconfig"
API_URL="https://127.0.0.1:$APISERVER_PORT"

now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# apt_install PKG... : tb_apt_install, retried, because the OpenStack and Slurm
# testbeds may hold the dpkg lock at the same moment on a shared machine.
apt_install() {
    local try
    for try in 1 2 3 4 5; do
        tb_apt_install "$@" && return 0
        tb_log "apt-get failed (try $try/5), retrying in 10 s"
        sleep 10
    done
    tb_die "could not install: $*"
}

# ---------------------------------------------------------------- build

binaries_cached() {
    [[ -x "$KUBE_BIN_DIR/kube-apiserver" && -x "$KUBE_BIN_DIR/kube-controller-manager" ]]
}

# fetch_source DIR : Debian's kubernetes source package, unpacked with its
# patches, into DIR/src. The deb-src index is private to DIR: /etc/apt stays
# untouched and no dpkg lock is taken, so a concurrent apt-get is not disturbed.
fetch_source() {
    local w=$1 a="$1/aptsrc"
    mkdir -p "$a/parts" "$a/lists/partial" "$a/cache/archives/partial"
    cat >"$a/parts/src.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # The _apt sandbox user cannot write into a root-owned cache dir.
    local o=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$a/parts"
        -o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache" -o Debug::NoLocking=1
        -o APT::Sandbox::User=root)
    apt-get "${o[@]}" -qq update
    (cd "$w" && apt-get "${o[@]}" -qq source --download-only kubernetes)
    local dsc
    dsc=$(ls "$w"/kubernetes_*.dsc)
    [[ "$(basename "$dsc")" == kubernetes_"$KUBE_DEB_UPSTREAM"-*.dsc ]] ||
        tb_die "Debian's kubernetes source is $(basename "$dsc"), expected $KUBE_DEB_UPSTREAM-*"
    rm -rf "$w/src"
    # apt already checked the files against the signed Sources index.
    dpkg-source --no-check -x "$dsc" "$w/src" >/dev/null
    basename "$dsc" .dsc >"$w/deb-version"
}

# swap_reflect2 SRC : the vendored modern-go/reflect2 v1.0.1 reads Go runtime
# internals that changed in Go 1.18; with Go 1.19 the apiserver segfaults on
# the first custom-resource write. Debian's 1.0.2 has the fix and the same API.
swap_reflect2() {
    local v="$1/vendor/github.com/modern-go/reflect2" d=/usr/share/gocode/src/github.com/modern-go/reflect2
    [[ -d "$d" ]] || tb_die "$d missing (golang-github-modern-go-reflect2-dev)"
    find "$v" -maxdepth 1 \( -name '*.go' -o -name '*.s' \) -delete
    cp "$d"/*.go "$d"/*.s "$v/"
}

build_binaries() {
    binaries_cached && return 0
    mkdir -p "$(dirname "$KUBE_BUILD_DIR")"
    # Two concurrent `up`s (a developer shell and a test run) must not build
    # the same tree at once; the second waits and then finds the cache filled.
    exec 9>"$(dirname "$KUBE_BUILD_DIR")/.build-$KUBE_VERSION.lock"
    flock 9
    if binaries_cached; then exec 9>&-; return 0; fi

    local t0 w=$KUBE_BUILD_DIR
    t0=$(now)
    tb_log "building kube-apiserver + kube-controller-manager $KUBE_VERSION from Debian source (~6 min, once)"
    apt_install golang-go dpkg-dev make golang-github-modern-go-reflect2-dev
    rm -rf "$w" && mkdir -p "$w/home"
    fetch_source "$w"
    swap_reflect2 "$w/src"
    # GOPATH/GOCACHE/GOFLAGS from the caller's shell would send the build into
    # module mode or a foreign cache; kube's make sets its own GOPATH (and it
    # parses -tags out of GOFLAGS, so -p must not go there: with Go 1.19,
    # GOMAXPROCS alone sets the default -p). HOME is private so the Go build
    # cache lands in the build dir and is dropped below. KUBE_GIT_* replace
    # the `git describe` that a tarball cannot answer.
    (cd "$w/src" && nice -n 15 env -u GOPATH -u GOCACHE -u GOROOT -u GOFLAGS HOME="$w/home" \
        GOMAXPROCS="$KUBE_BUILD_JOBS" \
        KUBE_GIT_VERSION="$KUBE_VERSION" KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean \
        make WHAT="cmd/kube-apiserver cmd/kube-controller-manager") >"$w/build.log" 2>&1 ||
        tb_die "build failed, see $w/build.log"

    local out="$w/src/_output/local/bin/linux/amd64" b
    mkdir -p "$KUBE_BIN_DIR"
    # Copy under a temporary name and rename, so an interrupted copy never
    # looks like a cached binary.
    for b in kube-controller-manager kube-apiserver; do
        cp "$out/$b" "$KUBE_BIN_DIR/.$b.tmp"
        mv "$KUBE_BIN_DIR/.$b.tmp" "$KUBE_BIN_DIR/$b"
    done
    {
        echo "version=$KUBE_VERSION"
        echo "debian_source=$(cat "$w/deb-version")"
        echo "go=$(go version)"
        echo "reflect2=$(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"
        echo "built=$(date -u +%FT%TZ) seconds=$(since "$t0")"
    } >"$KUBE_BIN_DIR/BUILD-INFO"
    # The tree, tarball and Go cache take ~2.2 GB and are useless once the two
    # binaries exist; to rebuild, remove $KUBE_BIN_DIR first.
    [[ "${YUNGUAN_KUBE_KEEP_BUILD:-0}" == 1 ]] || rm -rf "$w"
    tb_log "built in $(since "$t0") s -> $KUBE_BIN_DIR"
    exec 9>&-
}

# ---------------------------------------------------------------- credentials

# Certificates pass Python 3.13's VERIFY_X509_STRICT (key usages, AKI/SKI),
# so clients verify TLS against the CA instead of turning verification off.
make_certs() {
    [[ -s "$ETC/ca.crt" && -s "$ETC/apiserver.crt" && -s "$ETC/sa.key" ]] && return 0
    tb_log "generating CA, serving certificate and service-account key"
    (
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=yunguan-testbed-ca" \
            -keyout "$ETC/ca.key" -out "$ETC/ca.crt" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -addext "subjectKeyIdentifier=hash" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
            -keyout "$ETC/apiserver.key" -out "$ETC/apiserver.csr" 2>/dev/null
        cat >"$ETC/apiserver.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.250.0.1
EOF
        openssl x509 -req -in "$ETC/apiserver.csr" -CA "$ETC/ca.crt" -CAkey "$ETC/ca.key" \
            -CAcreateserial -days 3650 -extfile "$ETC/apiserver.ext" -out "$ETC/apiserver.crt" 2>/dev/null
        openssl genrsa -out "$ETC/sa.key" 2048 2>/dev/null
    )
    rm -f "$ETC/apiserver.csr"
}

# Static tokens: an admin in system:masters, and a user with no binding at all
# (only what system:authenticated gets: discovery), for "no rights" tests.
make_tokens() {
    [[ -s "$ETC/tokens.csv" ]] && return 0
    (
        umask 077
        printf '%s,testbed-admin,uid-testbed-admin,system:masters\n' "$(openssl rand -hex 24)" >"$ETC/tokens.csv"
        printf '%s,testbed-norights,uid-testbed-norights\n' "$(openssl rand -hex 24)" >>"$ETC/tokens.csv"
    )
}

token_of() { awk -F, -v u="$1" '$2 == u { print $1 }' "$ETC/tokens.csv"; }

# Written as JSON (a subset of YAML): kubectl and the Python client read it as
# any kubeconfig, and a stdlib-only script can parse it without PyYAML. The CA
# is embedded so the file stays valid when copied elsewhere.
write_kubeconfigs() {
    local ca admin norights
    ca=$(base64 -w0 "$ETC/ca.crt")
    admin=$(token_of testbed-admin)
    norights=$(token_of testbed-norights)
    (
        umask 077
        cat >"$KUBECONFIG_FILE.tmp" <<EOF
{
  "apiVersion": "v1",
  "kind": "Config",
  "clusters": [{"name": "testbed", "cluster": {"server": "$API_URL", "certificate-authority-data": "$ca"}}],
  "users": [
    {"name": "$CONTEXT_ADMIN", "user": {"token": "$admin"}},
    {"name": "$CONTEXT_NORIGHTS", "user": {"token": "$norights"}}
  ],
  "contexts": [
    {"name": "$CONTEXT_ADMIN", "context": {"cluster": "testbed", "user": "$CONTEXT_ADMIN", "namespace": "default"}},
    {"name": "$CONTEXT_NORIGHTS", "context": {"cluster": "testbed", "user": "$CONTEXT_NORIGHTS", "namespace": "default"}}
  ],
  "current-context": "$CONTEXT_ADMIN",
  "preferences": {}
}
EOF
        mv "$KUBECONFIG_FILE.tmp" "$KUBECONFIG_FILE"
        # The controller-manager gets its own file: a test that switches the
        # current context of the shared one must not demote the controllers.
        sed -e "s/\"current-context\": \"[^\"]*\"/\"current-context\": \"$CONTEXT_ADMIN\"/" \
            "$KUBECONFIG_FILE" >"$CM_KUBECONFIG"
    )
}

# ---------------------------------------------------------------- processes

# our_pid NAME : the recorded PID is alive AND still one of our daemons (its
# command line names our state dir). A PID reused by an unrelated process
# after a reboot or crash is treated as stale and never signalled.
our_pid() {
    local f="$TB_HOME/run/$1.pid" pid
    tb_pid_alive "$f" || return 1
    pid=$(cat "$f")
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$TB_HOME"
}

drop_stale_pid() {
    if [[ -e "$TB_HOME/run/$1.pid" ]] && ! our_pid "$1"; then
        rm -f "$TB_HOME/run/$1.pid"
    fi
}

# https_ok URL TOKEN : HTTP 200 over TLS verified against our CA.
https_ok() {
    local code
    code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' --cacert "$ETC/ca.crt" \
        -H "Authorization: Bearer $2" "$1" || true)
    [[ "$code" == 200 ]]
}

# wait_https NAME URL TOKEN SECONDS : like tb_wait_http, but needs a 200 (a
# 401/403 or "not ready" 500 means the server is not usable yet) and gives up
# early when the process died, pointing at its log.
wait_https() {
    local name=$1 url=$2 token=$3 limit=$4 i
    for ((i = 0; i < limit * 5; i++)); do
        https_ok "$url" "$token" && return 0
        our_pid "$name" || tb_die "$name exited; see $TB_HOME/log/$name.log"
        sleep 0.2
    done
    tb_die "$name not ready after ${limit}s; see $TB_HOME/log/$name.log"
}

# A port held by something that is not ours (another checkout's testbed, a
# developer's cluster) would make our daemon fail with a less clear message,
# so all ports are checked before anything is started.
require_free_ports() {
    local spec name port
    for spec in "etcd:$ETCD_PORT" "etcd:$ETCD_PEER_PORT" "kube-apiserver:$APISERVER_PORT" \
        "kube-controller-manager:$CM_PORT"; do
        name=${spec%%:*} port=${spec##*:}
        drop_stale_pid "$name"
        our_pid "$name" && continue
        ! tb_port_open 127.0.0.1 "$port" ||
            tb_die "127.0.0.1:$port ($name) is in use by another process (set YUNGUAN_KUBE_*_PORT)"
    done
}

start_etcd() {
    mkdir -p "$TB_HOME/data/etcd" && chmod 700 "$TB_HOME/data/etcd"
    tb_start etcd "$TB_HOME/log/etcd.log" etcd --name testbed --data-dir "$TB_HOME/data/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "testbed=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn
    tb_wait_http "http://127.0.0.1:$ETCD_PORT/health" 30 || tb_die "etcd not ready; see $TB_HOME/log/etcd.log"
}

start_apiserver() {
    # ServiceAccount admission is off: with it, every Pod create races the
    # token controller in a fresh namespace. LimitRanger + ResourceQuota are
    # what the quota tests exercise. --endpoint-reconciler-type=none: the
    # default reconciler rejects a loopback advertise address and logs errors.
    tb_start kube-apiserver "$TB_HOME/log/kube-apiserver.log" "$KUBE_BIN_DIR/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
        --secure-port="$APISERVER_PORT" --insecure-port=0 --cert-dir="$TB_HOME/data/apiserver" \
        --tls-cert-file="$ETC/apiserver.crt" --tls-private-key-file="$ETC/apiserver.key" \
        --client-ca-file="$ETC/ca.crt" --token-auth-file="$ETC/tokens.csv" \
        --authorization-mode=Node,RBAC \
        --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ResourceQuota,NodeRestriction \
        --disable-admission-plugins=ServiceAccount \
        --service-account-issuer="$SERVICE_ACCOUNT_ISSUER" --api-audiences="$SERVICE_ACCOUNT_ISSUER" \
        --service-account-key-file="$ETC/sa.key" --service-account-signing-key-file="$ETC/sa.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" --endpoint-reconciler-type=none \
        --profiling=false --v=0
    wait_https kube-apiserver "$API_URL/readyz" "$(token_of testbed-admin)" 90
}

start_controller_manager() {
    # Only the controllers that an API-only cluster needs: resourcequota fills
    # ResourceQuota status.used (without it quotas are stored but never
    # enforced); namespace finalizes deletes; serviceaccount(-token) give each
    # namespace its default account and token; garbagecollector follows
    # ownerReferences; clusterrole-aggregation fills admin/edit/view so tenant
    # RoleBindings to them grant something. No nodelifecycle: it would taint
    # the kubelet-less Nodes that tests create. No --authentication-kubeconfig:
    # it makes the controller-manager look for a request-header CA that this
    # apiserver does not have and log errors; /healthz needs no authentication.
    tb_start kube-controller-manager "$TB_HOME/log/kube-controller-manager.log" \
        "$KUBE_BIN_DIR/kube-controller-manager" \
        --kubeconfig="$CM_KUBECONFIG" \
        --leader-elect=false \
        --controllers=resourcequota,namespace,serviceaccount,serviceaccount-token,garbagecollector,clusterrole-aggregation \
        --service-account-private-key-file="$ETC/sa.key" --root-ca-file="$ETC/ca.crt" \
        --bind-address=127.0.0.1 --secure-port="$CM_PORT" --port=0 --cert-dir="$TB_HOME/data/controller-manager" \
        --tls-cert-file="$ETC/apiserver.crt" --tls-private-key-file="$ETC/apiserver.key" \
        --profiling=false --v=0
    wait_https kube-controller-manager "https://127.0.0.1:$CM_PORT/healthz" "$(token_of testbed-admin)" 60
}

# ---------------------------------------------------------------- commands

cmd_up() {
    local t0 t
    t0=$(now)
    if ! command -v openssl >/dev/null || ! command -v curl >/dev/null; then apt_install openssl curl; fi
    command -v etcd >/dev/null || apt_install etcd-server
    build_binaries
    make_certs
    make_tokens
    write_kubeconfigs
    require_free_ports
    t=$(now); start_etcd; tb_log "etcd ready in $(since "$t") s"
    t=$(now); start_apiserver; tb_log "kube-apiserver ready in $(since "$t") s"
    t=$(now); start_controller_manager; tb_log "kube-controller-manager ready in $(since "$t") s"
    tb_log "up in $(since "$t0") s: $API_URL (eval \"\$($0 env)\")"
}

cmd_down() {
    local name
    # Reverse start order: controllers first, so none of them logs a storm of
    # connection errors against a vanished apiserver.
    for name in kube-controller-manager kube-apiserver etcd; do
        drop_stale_pid "$name"
        tb_stop "$name"
    done
    if [[ "${1:-}" == "--wipe" ]]; then
        rm -rf "$TB_HOME/data/etcd"
        tb_log "etcd data wiped: the next up starts an empty cluster"
    fi
}

cmd_status() {
    local rc=0 admin=""
    [[ -s "$ETC/tokens.csv" ]] && admin=$(token_of testbed-admin)
    report() { # NAME OK DETAIL
        if [[ "$2" == 1 ]]; then echo "$1: up ($3)"; else echo "$1: DOWN ($3)"; rc=1; fi
    }
    local ok
    ok=0; our_pid etcd && curl -sf -m 3 "http://127.0.0.1:$ETCD_PORT/health" >/dev/null && ok=1
    report etcd $ok "127.0.0.1:$ETCD_PORT"
    ok=0; our_pid kube-apiserver && https_ok "$API_URL/readyz" "$admin" && ok=1
    report kube-apiserver $ok "$API_URL"
    ok=0; our_pid kube-controller-manager && https_ok "https://127.0.0.1:$CM_PORT/healthz" "$admin" && ok=1
    report kube-controller-manager $ok "127.0.0.1:$CM_PORT"
    # A reflect2-style crash shows up as a Go fatal error or panic in the log.
    if grep -qE '^(fatal error|panic:)' "$TB_HOME/log/kube-apiserver.log" 2>/dev/null; then
        echo "kube-apiserver.log contains a fatal error or panic"
        rc=1
    fi
    return $rc
}

cmd_env() {
    printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_FILE"
    printf 'export YUNGUAN_KUBE_CONTEXT_ADMIN=%q\n' "$CONTEXT_ADMIN"
    printf 'export YUNGUAN_KUBE_CONTEXT_NORIGHTS=%q\n' "$CONTEXT_NORIGHTS"
    printf 'export YUNGUAN_KUBE_API_URL=%q\n' "$API_URL"
    printf 'export YUNGUAN_KUBE_CA_FILE=%q\n' "$ETC/ca.crt"
}

main() {
    case "${1:-}" in
        up) cmd_up ;;
        down) cmd_down "${2:-}" ;;
        status) cmd_status ;;
        env) cmd_env ;;
        build) build_binaries ;;
        *)
            echo "usage: $0 up|down [--wipe]|status|env|build" >&2
            exit 2
            ;;
    esac
}

main "$@"
