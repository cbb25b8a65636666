# Shared helpers for the testbed scripts (sourced, never executed).
#
# Every testbed keeps its state under $TESTBED_ROOT/<name>, records the PID of
# each daemon it starts in run/<daemon>.pid, and stops only those PIDs: the
# machine may run other instances of the same daemons (the CI machine runs
# PostgreSQL, MariaDB, Redis and RabbitMQ before we start).

set -euo pipefail

YUNGUAN_CACHE="${YUNGUAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/yunguan}"
TESTBED_ROOT="${YUNGUAN_TESTBED_ROOT:-$YUNGUAN_CACHE/testbed}"
# The machine's global pip config may name local indexes that do not exist.
export PIP_DISABLE_PIP_VERSION_CHECK=1

tb_log() { printf '[testbed %s] %s\n' "${TB_NAME:-?}" "$*" >&2; }
tb_die() { tb_log "error: $*"; exit 1; }

# tb_port_open HOST PORT -> 0 when something accepts a TCP connection.
tb_port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# tb_wait_port HOST PORT SECONDS
tb_wait_port() {
    local host=$1 port=$2 limit=$3 i
    for ((i = 0; i < limit * 5; i++)); do
        tb_port_open "$host" "$port" && return 0
        sleep 0.2
    done
    return 1
}

# tb_wait_http URL SECONDS -> waits for any HTTP status below 500.
tb_wait_http() {
    local url=$1 limit=$2 i code
    for ((i = 0; i < limit * 2; i++)); do
        code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$url" || true)
        if [[ "$code" =~ ^[1-4][0-9][0-9]$ ]]; then return 0; fi
        sleep 0.5
    done
    return 1
}

# tb_pid_alive PIDFILE
# tb_running PID: the process exists and has not exited (a zombie, which
# `kill -0` still finds until its parent reaps it, counts as exited).
tb_running() {
    local stat state
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(<"/proc/$1/stat") 2>/dev/null || return 1
    state=${stat##*) } # the name in parentheses may contain spaces
    state=${state%% *}
    [[ -n "$state" && "$state" != Z ]]
}

tb_pid_alive() {
    local f=$1
    [[ -s "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# tb_start NAME LOGFILE CMD... : run CMD in its own session, record its PID.
tb_start() {
    local name=$1 log=$2
    shift 2
    mkdir -p "$TB_HOME/run" "$(dirname "$log")"
    if tb_pid_alive "$TB_HOME/run/$name.pid"; then
        tb_log "$name already running (pid $(cat "$TB_HOME/run/$name.pid"))"
        return 0
    fi
    setsid "$@" >>"$log" 2>&1 </dev/null &
    local pid=$! i
    echo "$pid" >"$TB_HOME/run/$name.pid"
    # Until the forked subshell has exec'd, /proc/PID/cmdline is still this
    # script's, and while execve swaps the address space it reads empty; callers
    # that check "is the recorded PID still our daemon?" by its command line
    # would take it for dead. On a loaded machine that window is long enough to
    # matter (CI failed on it), so wait, bounded, until the new command line shows.
    local cmd
    for ((i = 0; i < 200; i++)); do
        tb_running "$pid" || break
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || break
        [[ -n "$cmd" ]] && ! cmp -s "/proc/$pid/cmdline" "/proc/$$/cmdline" && break
        sleep 0.05
    done
    tb_log "started $name (pid $pid)"
}

# tb_stop NAME [GRACE_SECONDS]: SIGTERM the recorded PID (and its process
# group, which setsid made it lead), SIGKILL after the grace period.
tb_stop() {
    local name=$1 grace=${2:-15} f pid i
    f="$TB_HOME/run/$name.pid"
    [[ -s "$f" ]] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < grace * 5; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
    tb_log "stopped $name"
}

# tb_apt_install PKG... : install Debian packages that are missing, without
# letting maintainer scripts start daemons (there is no systemd here).
tb_apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    tb_log "apt-get install ${missing[*]}"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    local had_policy=0
    [[ -e /usr/sbin/policy-rc.d ]] && had_policy=1
    if ((had_policy == 0)); then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
    fi
    # Wait for another apt/dpkg run (unattended-upgrades, a second testbed
    # script) instead of failing on its lock.
    local lock=(-o DPkg::Lock::Timeout=600)
    if [[ ! -f "$TESTBED_ROOT/.apt-updated" ]] || [[ -n "$(find "$TESTBED_ROOT/.apt-updated" -mmin +720 2>/dev/null)" ]]; then
        $sudo apt-get "${lock[@]}" update -qq || true
        mkdir -p "$TESTBED_ROOT" && touch "$TESTBED_ROOT/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" || {
        ((had_policy == 0)) && $sudo rm -f /usr/sbin/policy-rc.d
        return 1
    }
    ((had_policy == 0)) && $sudo rm -f /usr/sbin/policy-rc.d
    return 0
}

# tb_init NAME : sets TB_NAME and TB_HOME and creates the state folders.
tb_init() {
    TB_NAME=$1
    TB_HOME="$TESTBED_ROOT/$1"
    mkdir -p "$TB_HOME"/{run,log,etc,data}
}
