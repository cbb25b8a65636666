#!/usr/bin/env bash
# Observability testbed: Prometheus + Alertmanager (+ promtool) from Debian's
# packages, on 127.0.0.1 only, for the control plane's monitoring tests.
#
#   observability.sh up       install what is missing, write the configs, start, wait for /-/ready
#   observability.sh reload   rewrite the configs from the OBS_* variables and hot-reload
#   observability.sh status   exit 0 only when both servers are ready
#   observability.sh env      print eval-able exports (PROMETHEUS_URL, ALERTMANAGER_URL, PROMTOOL, ...)
#   observability.sh down     stop the servers this testbed started (by recorded PID)
#
# Configuration (read by `up` and `reload`):
#   OBS_SCRAPE_TARGETS   comma-separated host:port list scraped as one job (default: none)
#   OBS_RULE_FILES       comma-separated rule file globs (default: none); relative paths are
#                        taken from the caller's working directory, not from the config's
#   OBS_SCRAPE_INTERVAL  default 2s
#   OBS_EVAL_INTERVAL    default 2s
#   OBS_JOB_NAME         job label of the scraped targets (default: testbed)
#   OBS_WEBHOOK_URL      optional Alertmanager webhook receiver (send_resolved: true)
#   OBS_PROMETHEUS_PORT / OBS_ALERTMANAGER_PORT   default 19090 / 19093, off the defaults
#                        because a shared machine may already run a Prometheus on 9090
#
# State lives in $TESTBED_ROOT/observability/{etc,data,log,run}.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

tb_init observability

OBS_HOST=127.0.0.1
PROM_PORT=${OBS_PROMETHEUS_PORT:-19090}
AM_PORT=${OBS_ALERTMANAGER_PORT:-19093}
PROM_URL="http://$OBS_HOST:$PROM_PORT"
AM_URL="http://$OBS_HOST:$AM_PORT"
PROM_CONFIG="$TB_HOME/etc/prometheus.yml"
AM_CONFIG="$TB_HOME/etc/alertmanager.yml"
READY_TIMEOUT=${OBS_READY_TIMEOUT:-30}

# Debian names the Alertmanager binary prometheus-alertmanager, not alertmanager.
PROM_BIN=prometheus
AM_BIN=prometheus-alertmanager

# --- helpers -----------------------------------------------------------------

now_us() { echo "${EPOCHREALTIME/./}"; }
# elapsed START_US -> "1.234s"
elapsed() {
    local d=$(($(now_us) - $1))
    printf '%d.%03ds' $((d / 1000000)) $((d % 1000000 / 1000))
}

# yaml_quote STRING -> a single-quoted YAML scalar (the only escape is '').
yaml_quote() {
    local s=${1//\'/\'\'}
    printf "'%s'" "$s"
}

# split_csv STRING -> one trimmed, non-empty item per line.
split_csv() {
    local item
    local -a items
    IFS=',' read -r -a items <<<"$1"
    for item in "${items[@]}"; do
        item="${item#"${item%%[![:space:]]*}"}"
        item="${item%"${item##*[![:space:]]}"}"
        [[ -n "$item" ]] && printf '%s\n' "$item"
    done
    return 0
}

# obs_owned NAME BINARY: the recorded PID is alive AND still runs BINARY. The
# state dir outlives reboots, so a bare `kill -0` could match a recycled PID
# that belongs to somebody else; we must never signal such a process.
obs_owned() {
    local name=$1 bin=$2 pid cmd
    tb_pid_alive "$TB_HOME/run/$name.pid" || return 1
    pid=$(cat "$TB_HOME/run/$name.pid")
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmd" == *"$bin"* && "$cmd" == *"$TB_HOME"* ]]
}

# obs_forget_stale NAME BINARY: drop a PID file that no longer points at our server.
obs_forget_stale() {
    local f="$TB_HOME/run/$1.pid"
    if [[ -e "$f" ]] && ! obs_owned "$1" "$2"; then
        tb_log "removing stale pid file for $1"
        rm -f "$f"
    fi
}

# obs_ready URL -> 0 when GET URL/-/ready answers 200 (503 while starting).
obs_ready() {
    curl -fsS -o /dev/null -m 3 "$1/-/ready" 2>/dev/null
}

# obs_wait_ready NAME BINARY PORT URL: like tb_wait_port + tb_wait_http, but
# gives up at once when the server dies (bad config, port taken) instead of
# spinning until the timeout, and shows the log tail that says why.
obs_wait_ready() {
    local name=$1 bin=$2 port=$3 url=$4 i
    for ((i = 0; i < READY_TIMEOUT; i++)); do
        # Alive is enough here: we started it a moment ago (the command-line
        # check of obs_owned is for PID files that outlived their process).
        tb_running "$(cat "$TB_HOME/run/$name.pid")" || break
        tb_wait_port "$OBS_HOST" "$port" 1 || continue
        # /-/ready answers 503 until the server is up; tb_wait_http treats
        # only 5xx as "not yet", so a 200 is what we get back from it.
        tb_wait_http "$url/-/ready" 1 || continue
        obs_ready "$url" && return 0
    done
    tb_log "$name did not become ready; last log lines:"
    tail -n 20 "$TB_HOME/log/$name.log" >&2 || true
    return 1
}

have_binaries() {
    command -v "$PROM_BIN" >/dev/null && command -v promtool >/dev/null && command -v "$AM_BIN" >/dev/null
}

# ensure_packages: install only what is missing (a dev machine may have its own).
ensure_packages() {
    have_binaries && return 0
    local t0
    t0=$(now_us)
    # dpkg's progress goes to stderr: stdout of this script stays for data.
    tb_apt_install prometheus prometheus-alertmanager >&2 ||
        tb_die "apt-get install prometheus prometheus-alertmanager failed"
    tb_log "packages installed in $(elapsed "$t0")"
    have_binaries || tb_die "prometheus binaries still missing after install"
}

# render_prometheus_config -> prometheus.yml on stdout, from the OBS_* variables.
render_prometheus_config() {
    local scrape=${OBS_SCRAPE_INTERVAL:-2s} eval_int=${OBS_EVAL_INTERVAL:-2s}
    local job=${OBS_JOB_NAME:-testbed} item
    local -a targets rules
    mapfile -t targets < <(split_csv "${OBS_SCRAPE_TARGETS:-}")
    mapfile -t rules < <(split_csv "${OBS_RULE_FILES:-}")

    echo "# Generated by scripts/testbed/observability.sh; rewritten by 'up' and 'reload'."
    echo "global:"
    echo "  scrape_interval: $scrape"
    echo "  evaluation_interval: $eval_int"
    echo "rule_files:"
    if ((${#rules[@]} == 0)); then
        echo "  []"
    fi
    for item in "${rules[@]}"; do
        # Prometheus resolves relative paths against the config file's
        # directory; callers mean their own working directory.
        [[ "$item" == /* ]] || item="$PWD/$item"
        echo "  - $(yaml_quote "$item")"
    done
    echo "alerting:"
    echo "  alertmanagers:"
    echo "    - static_configs:"
    echo "        - targets: ['$OBS_HOST:$AM_PORT']"
    echo "scrape_configs:"
    if ((${#targets[@]} == 0)); then
        echo "  []"
        return 0
    fi
    echo "  - job_name: $(yaml_quote "$job")"
    echo "    static_configs:"
    echo "      - targets:"
    for item in "${targets[@]}"; do
        echo "          - $(yaml_quote "$item")"
    done
}

# render_alertmanager_config -> alertmanager.yml on stdout. group_wait is short
# so that a firing alert shows up in /api/v2/alerts and the webhook within ~1 s.
render_alertmanager_config() {
    echo "# Generated by scripts/testbed/observability.sh."
    echo "route:"
    echo "  receiver: testbed"
    echo "  group_by: [alertname]"
    echo "  group_wait: 1s"
    echo "  group_interval: 5s"
    echo "  repeat_interval: 1h"
    echo "receivers:"
    echo "  - name: testbed"
    if [[ -n "${OBS_WEBHOOK_URL:-}" ]]; then
        echo "    webhook_configs:"
        echo "      - url: $(yaml_quote "$OBS_WEBHOOK_URL")"
        echo "        send_resolved: true"
    fi
}

# install_config RENDER_FN DEST [CHECK_CMD...] -> 0 if DEST changed, 1 if not.
# Validates before replacing, and replaces atomically, so that a running
# server never reloads a half-written or broken file.
install_config() {
    local render=$1 dest=$2 tmp
    shift 2
    tmp="$dest.new"
    "$render" >"$tmp"
    if (($# > 0)) && ! "$@" "$tmp" >"$tmp.check" 2>&1; then
        cat "$tmp.check" >&2
        rm -f "$tmp" "$tmp.check"
        tb_die "generated $(basename "$dest") is invalid (see above)"
    fi
    rm -f "$tmp.check"
    if [[ -f "$dest" ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$dest"
    return 0
}

# check_params: reject malformed OBS_* values before anything is written.
check_params() {
    local item
    while IFS= read -r item; do
        [[ "$item" =~ ^[^[:space:]/]+:[0-9]+$ ]] || tb_die "OBS_SCRAPE_TARGETS: '$item' is not host:port"
    done < <(split_csv "${OBS_SCRAPE_TARGETS:-}")
}

# write_configs -> sets PROM_CHANGED / AM_CHANGED (0/1).
write_configs() {
    PROM_CHANGED=0 AM_CHANGED=0
    check_params
    # promtool also loads the rule files, so a broken rule fails here with a
    # readable message instead of inside the running server.
    if install_config render_prometheus_config "$PROM_CONFIG" promtool check config; then
        PROM_CHANGED=1
    fi
    if install_config render_alertmanager_config "$AM_CONFIG"; then
        AM_CHANGED=1
    fi
}

# http_reload NAME URL: POST /-/reload; the server answers 500 plus the error
# when it rejects the new config and keeps running the old one.
http_reload() {
    local out
    if ! out=$(curl -sS -m 10 -X POST -w '\n%{http_code}' "$2/-/reload" 2>&1) || [[ "${out##*$'\n'}" != 200 ]]; then
        tb_die "$1 reload failed: ${out%$'\n'*}"
    fi
    tb_log "$1 reloaded"
}

# lock: `up`, `reload` and `down` from parallel CI jobs must not interleave.
take_lock() {
    exec 9>"$TB_HOME/run/.lock"
    flock -w 120 9 || tb_die "timed out waiting for $TB_HOME/run/.lock"
}

# --- subcommands ---------------------------------------------------------------

# port_free NAME BINARY PORT: before starting anything, make sure that a server
# we do not run yet will find its port free, so that a clash fails `up` cleanly
# instead of leaving one server half-started.
port_free() {
    local name=$1 bin=$2 port=$3
    obs_forget_stale "$name" "$bin"
    obs_owned "$name" "$bin" && return 0
    if tb_port_open "$OBS_HOST" "$port"; then
        tb_die "port $port is taken by a process this testbed did not start; set OBS_${name^^}_PORT"
    fi
}

# start_one NAME BINARY PORT URL ARGS... -> sets STARTED=1 when it started the
# server, 0 when ours was already running.
start_one() {
    local name=$1 bin=$2 port=$3 url=$4 t0
    shift 4
    STARTED=0
    if obs_owned "$name" "$bin"; then
        tb_log "$name already running (pid $(cat "$TB_HOME/run/$name.pid"))"
        return 0
    fi
    t0=$(now_us)
    # tb_start runs the binary directly (setsid execs it), so the recorded PID
    # is the server itself and `down` can stop exactly that. 9>&- keeps the
    # lock fd out of the daemon, which would otherwise hold the lock forever.
    tb_start "$name" "$TB_HOME/log/$name.log" "$bin" "$@" 9>&-
    STARTED=1
    if ! obs_wait_ready "$name" "$bin" "$port" "$url"; then
        tb_stop "$name" 5 # never leave a half-started server behind
        tb_die "$name failed to start"
    fi
    tb_log "$name ready at $url in $(elapsed "$t0")"
}

cmd_up() {
    local t0
    t0=$(now_us)
    take_lock
    ensure_packages
    mkdir -p "$TB_HOME/data/prometheus" "$TB_HOME/data/alertmanager"
    write_configs
    port_free alertmanager "$AM_BIN" "$AM_PORT"
    port_free prometheus "$PROM_BIN" "$PROM_PORT"

    # Alertmanager first, so that Prometheus can deliver alerts from the start.
    # `up` converges: when a server was already running, a second `up` with
    # other OBS_* values applies them instead of silently keeping the old ones.
    start_one alertmanager "$AM_BIN" "$AM_PORT" "$AM_URL" \
        --config.file="$AM_CONFIG" \
        --storage.path="$TB_HOME/data/alertmanager" \
        --web.listen-address="$OBS_HOST:$AM_PORT" \
        --web.external-url="$AM_URL" \
        --cluster.listen-address= \
        --log.level=warn
    if ((STARTED == 0 && AM_CHANGED)); then http_reload alertmanager "$AM_URL"; fi
    start_one prometheus "$PROM_BIN" "$PROM_PORT" "$PROM_URL" \
        --config.file="$PROM_CONFIG" \
        --storage.tsdb.path="$TB_HOME/data/prometheus" \
        --storage.tsdb.retention.time=2d \
        --web.listen-address="$OBS_HOST:$PROM_PORT" \
        --web.external-url="$PROM_URL" \
        --web.enable-lifecycle \
        --log.level=warn
    if ((STARTED == 0 && PROM_CHANGED)); then http_reload prometheus "$PROM_URL"; fi
    tb_log "up in $(elapsed "$t0")"
}

cmd_reload() {
    take_lock
    obs_owned prometheus "$PROM_BIN" || tb_die "prometheus is not running; run '$0 up'"
    obs_owned alertmanager "$AM_BIN" || tb_die "alertmanager is not running; run '$0 up'"
    write_configs
    # Reload even when prometheus.yml is unchanged: the rule files it names
    # may have been rewritten, and that is what callers expect a reload to pick up.
    http_reload prometheus "$PROM_URL"
    if ((AM_CHANGED)); then http_reload alertmanager "$AM_URL"; fi
}

cmd_down() {
    take_lock
    obs_forget_stale prometheus "$PROM_BIN"
    obs_forget_stale alertmanager "$AM_BIN"
    # In parallel: each takes 1-2 s to shut down, and CI waits for both.
    tb_stop prometheus 20 &
    tb_stop alertmanager 20 &
    wait
}

cmd_status() {
    local rc=0 name bin url pid
    for name in prometheus alertmanager; do
        if [[ $name == prometheus ]]; then bin=$PROM_BIN url=$PROM_URL; else bin=$AM_BIN url=$AM_URL; fi
        if obs_owned "$name" "$bin" && obs_ready "$url"; then
            pid=$(cat "$TB_HOME/run/$name.pid")
            printf '%-13s up    pid %-7s %s\n' "$name" "$pid" "$url"
        else
            printf '%-13s down\n' "$name"
            rc=1
        fi
    done
    return "$rc"
}

cmd_env() {
    local promtool amtool
    promtool=$(command -v promtool) || tb_die "promtool is not installed; run '$0 up'"
    amtool=$(command -v amtool || true)
    printf 'export PROMETHEUS_URL=%q\n' "$PROM_URL"
    printf 'export ALERTMANAGER_URL=%q\n' "$AM_URL"
    printf 'export PROMTOOL=%q\n' "$promtool"
    printf 'export AMTOOL=%q\n' "$amtool"
    # Tests that rewrite the config themselves POST $PROMETHEUS_URL/-/reload afterwards.
    printf 'export PROMETHEUS_CONFIG=%q\n' "$PROM_CONFIG"
}

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

main() {
    case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    reload) cmd_reload ;;
    *) usage ;;
    esac
}

main "$@"
