#!/usr/bin/env bash
# Single-node Slurm 22.05 testbed with slurmrestd (JWT) on 127.0.0.1.
#
#   scripts/testbed/slurm.sh up       start (idempotent) and wait until usable
#   scripts/testbed/slurm.sh down     cancel testbed jobs, stop what we started
#   scripts/testbed/slurm.sh status   one line per daemon; exit 0 only if all up
#   scripts/testbed/slurm.sh env      eval-able exports for the tests
#
# Layout: everything lives under $TESTBED_ROOT/slurm (see lib.sh): etc/ holds
# the generated configs and the HS256 key, run/ the PID files, log/ the logs,
# spool/ the controller and node state. Deleting that folder (after `down`)
# gives a fresh cluster: the accounting database is then dropped and recreated.
#
# Why it looks the way it does:
# - Nothing here relies on an init system: every daemon runs in the foreground
#   (-D / -F) under setsid through tb_start, so the recorded PID is the daemon
#   itself and `down` can stop exactly that process.
# - SlurmUser=root: the state dir sits under $HOME (/root is 0700), which the
#   `slurm` user cannot traverse. slurmrestd must not run as root/SlurmUser, so
#   it runs as the unprivileged `slurmrest` user; it drops privileges before
#   reading slurm.conf, so it may get a world-readable copy under /run.
# - Configs live in the state dir, not /etc/slurm, so the machine's Slurm
#   defaults stay untouched; clients find them through SLURM_CONF.
# - MariaDB and munged already running on the machine are reused (a database
#   of our own in the shared MariaDB) and never stopped; otherwise the testbed
#   starts private ones and stops them on `down`.
# - Requires root: munged runs as `munge`, slurmd must be root to launch jobs.
#
# Overrides: YG_SLURM_{CTLD,SLURMD,DBD,REST,PRIVATE_DB}_PORT, YG_SLURM_CLUSTER,
# YG_SLURM_DB_NAME (one testbed per database: a fresh state dir drops it),
# YG_SLURM_PRIVATE_DB=1 (private MariaDB even when 127.0.0.1:3306 answers).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"
tb_init slurm

# Ports are off the Slurm defaults (6817-6820) so that a real Slurm install on
# a developer machine does not collide with the testbed.
SL_CLUSTER=${YG_SLURM_CLUSTER:-yunguan}
SL_CTLD_PORT=${YG_SLURM_CTLD_PORT:-16817}
SL_SLURMD_PORT=${YG_SLURM_SLURMD_PORT:-16818}
SL_DBD_PORT=${YG_SLURM_DBD_PORT:-16819}
SL_REST_PORT=${YG_SLURM_REST_PORT:-16820}
SL_SHARED_DB_PORT=3306    # the machine's MariaDB, reused when it answers
SL_PRIV_DB_PORT=${YG_SLURM_PRIVATE_DB_PORT:-13307}
SL_DB_NAME=${YG_SLURM_DB_NAME:-yg_slurm_acct} # distinct: the shared MariaDB serves others
SL_DB_USER=yg_slurm
SL_TOKEN_USER=root        # tokens are minted for root: Slurm admin, job owner
SL_REST_OS_USER=slurmrest # slurmrestd refuses to run as root or SlurmUser
SL_API=v0.0.38            # the only current API of 22.05
SL_PKGS=(munge slurmctld slurmd slurmdbd slurmrestd slurm-client
    slurm-wlm-jwt-plugin slurm-wlm-basic-plugins mariadb-client)

SL_ETC=$TB_HOME/etc
SL_RUN=$TB_HOME/run
SL_LOG=$TB_HOME/log
SL_CONF=$SL_ETC/slurm.conf
SL_JWT_KEY=$SL_ETC/jwt_hs256.key
SL_DB_PASS_FILE=$SL_ETC/db.pass
SL_DB_MODE_FILE=$TB_HOME/data/db.mode
SL_MYSQL=$TB_HOME/mysql
SL_NODE=$(hostname -s)
SL_REST_URL="http://127.0.0.1:$SL_REST_PORT"
# Readable copy of slurm.conf for slurmrestd, one per state dir.
SL_REST_CONF_DIR=/run/yunguan-testbed/slurm-$(printf '%s' "$TB_HOME" | cksum | cut -d' ' -f1)

# Every Slurm client below must talk to this cluster with munge, never with a
# token that happens to be in the caller's environment.
export SLURM_CONF=$SL_CONF
unset SLURM_JWT

# ---------------------------------------------------------------- helpers --

# sl_wait SECONDS WHAT CMD... : poll CMD every 0.2 s; die with WHAT on timeout.
sl_wait() {
    local limit=$1 what=$2 i
    shift 2
    for ((i = 0; i < limit * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    tb_die "timed out after ${limit}s waiting for $what (logs: $SL_LOG)"
}

# sl_alive NAME COMM : our recorded PID is alive *and* is still that program
# (a bare kill -0 would accept a recycled PID).
sl_alive() {
    local f="$SL_RUN/$1.pid" pid stat
    [[ -s "$f" ]] || return 1
    pid=$(<"$f")
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/stat" ]] || return 1
    [[ "$(<"/proc/$pid/comm")" == "$2" ]] || return 1
    # A killed daemon stays a zombie until init reaps it (our launcher shell
    # is gone); its comm is unchanged, so look at the state field too.
    stat=$(<"/proc/$pid/stat") || return 1
    stat=${stat##*) }
    [[ "${stat%% *}" != [ZX] ]]
}

# sl_forget_stale NAME COMM : drop a PID file that no longer names our daemon,
# so that tb_start starts a new one and tb_stop never signals a stranger.
sl_forget_stale() {
    if [[ -e "$SL_RUN/$1.pid" ]] && ! sl_alive "$1" "$2"; then
        rm -f "$SL_RUN/$1.pid"
    fi
}

# sl_stop NAME COMM [GRACE] : stop our daemon by PID only.
sl_stop() {
    sl_forget_stale "$1" "$2"
    tb_stop "$1" "${3:-30}"
}

# sl_need_port NAME PORT : refuse to start NAME when someone else holds PORT;
# otherwise our daemon would fail later with a less obvious error, or worse,
# our clients would talk to the stranger.
sl_need_port() {
    if tb_port_open 127.0.0.1 "$2"; then
        tb_die "port $2 (for $1) is taken by a process this testbed did not start"
    fi
}

# sl_write FILE MODE : write stdin to FILE only when the content changed, so a
# warm `up` does not touch files that running daemons have already read.
sl_write() {
    local file=$1 mode=$2 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [[ -f "$file" ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
        return 0
    fi
    mv -f "$tmp" "$file"
    SL_CONF_CHANGED=1
}

sl_munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

sl_db_ok() { # PORT : MariaDB on 127.0.0.1 answers as root without a password
    mariadb --connect-timeout=2 -h127.0.0.1 -P"$1" -uroot -e 'select 1' >/dev/null 2>&1
}

sl_priv_sql() {
    mariadb --no-defaults --socket="$SL_MYSQL/run/mysqld.sock" -uroot "$@"
}

sl_ctld_ok() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

sl_node_state() { sinfo -h -N -n "$SL_NODE" -o %T 2>/dev/null | head -n1; }

sl_state_usable() { [[ "$1" =~ ^(idle|mixed|allocated)$ ]]; }

# sl_token [LIFESPAN] : a JWT for $SL_TOKEN_USER from slurmctld itself (root
# may mint for anyone); tests mint their own from the key file.
sl_token() {
    scontrol token username="$SL_TOKEN_USER" lifespan="${1:-120}" 2>/dev/null |
        sed -n 's/^SLURM_JWT=//p'
}

sl_rest_ping_ok() {
    local tok code
    tok=$(sl_token 60) || return 1
    [[ -n "$tok" ]] || return 1
    code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' \
        -H "X-SLURM-USER-NAME: $SL_TOKEN_USER" -H "X-SLURM-USER-TOKEN: $tok" \
        "$SL_REST_URL/slurm/$SL_API/ping") || return 1
    [[ "$code" == 200 ]]
}

# ----------------------------------------------------------------- install --

sl_install() {
    local i need=0 p
    for p in "${SL_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need=1
    done
    if ((need)); then
        # Other workers may hold the dpkg lock; lib.sh does not wait for it.
        for i in 1 2 3 4 5; do
            tb_apt_install "${SL_PKGS[@]}" && break
            ((i == 5)) && tb_die "apt-get install failed"
            tb_log "apt-get failed (dpkg lock?), retry $i/5 in 10 s"
            sleep 10
        done
    fi
    if ! id -u "$SL_REST_OS_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$SL_REST_OS_USER"
    fi
    # Debian's munge postinst normally creates the key.
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
}

# ------------------------------------------------------------------ config --

sl_secrets() {
    umask 077
    if [[ ! -s "$SL_JWT_KEY" ]]; then
        # 32 random bytes = a full-strength HS256 key; slurmctld/slurmdbd run
        # as root, so root:0600 is enough and keeps it private.
        dd if=/dev/urandom of="$SL_JWT_KEY" bs=32 count=1 status=none
    fi
    if [[ ! -s "$SL_DB_PASS_FILE" ]]; then
        head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$SL_DB_PASS_FILE"
    fi
    umask 022
}

sl_write_configs() {
    local db_port=$1 comm="NoInAddrAny" dbd_comm="" ip
    # No*InAddrAny make slurmctld/slurmdbd bind to what the host name resolves
    # to instead of 0.0.0.0; only use them when that is 127.0.0.1, else our
    # clients (which all dial 127.0.0.1) could not reach the daemons.
    ip=$(getent ahostsv4 "$(hostname)" 2>/dev/null | awk 'NR==1{print $1}')
    if [[ "$ip" == 127.0.0.1 ]]; then
        comm="NoInAddrAny,NoCtldInAddrAny"
        dbd_comm="CommunicationParameters=NoInAddrAny"
    else
        tb_log "note: $(hostname) resolves to ${ip:-nothing}; slurmctld and slurmdbd listen on 0.0.0.0"
    fi
    mkdir -p "$TB_HOME"/{spool/ctld,spool/d,fakegpu}
    # Fake GPUs need File=: without it slurmd 22.05 drops the GRES and the
    # node goes INVAL+DRAIN. Plain empty files are enough for scheduling.
    touch "$TB_HOME/fakegpu/nvidia0" "$TB_HOME/fakegpu/nvidia1"

    sl_write "$SL_CONF" 0644 <<EOF
# Generated by scripts/testbed/slurm.sh - rewritten on every start.
ClusterName=$SL_CLUSTER
SlurmctldHost=$SL_NODE(127.0.0.1)
# root: the state dir under \$HOME is not reachable for the slurm user.
SlurmUser=root
SlurmctldPort=$SL_CTLD_PORT
SlurmdPort=$SL_SLURMD_PORT
CommunicationParameters=$comm
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$SL_JWT_KEY
StateSaveLocation=$TB_HOME/spool/ctld
SlurmdSpoolDir=$TB_HOME/spool/d
SlurmctldPidFile=$SL_RUN/slurmctld.pid
SlurmdPidFile=$SL_RUN/slurmd.pid
SlurmctldLogFile=$SL_LOG/slurmctld.log
SlurmdLogFile=$SL_LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No usable cgroup hierarchy on CI machines: track by /proc, no isolation.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
# Declares more CPUs than the hardware has without draining the node.
SlurmdParameters=config_overrides
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
SchedulerType=sched/backfill
# A raised limit releases a pending job in seconds instead of 30-60 s.
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without it a job without --mem takes the whole node's memory.
DefMemPerCPU=256
GresTypes=gpu
PriorityType=priority/multifactor
PriorityWeightFairshare=10000
PriorityWeightAge=1000
PriorityDecayHalfLife=7-0
PriorityCalcPeriod=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$SL_DBD_PORT
# Enforces GrpTRES on accounts and QOS (over-limit jobs pend).
AccountingStorageEnforce=associations,limits,qos
# Required for GrpTRES=gres/gpu=N to be tracked.
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
MailProg=/bin/true
NodeName=$SL_NODE NodeAddr=127.0.0.1 CPUs=4 RealMemory=8192 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$SL_NODE Default=YES MaxTime=INFINITE State=UP
EOF

    sl_write "$SL_ETC/gres.conf" 0644 <<EOF
NodeName=$SL_NODE Name=gpu File=$TB_HOME/fakegpu/nvidia[0-1]
EOF

    sl_write "$SL_ETC/cgroup.conf" 0644 <<EOF
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF

    # slurmdbd insists on 0600 and owner SlurmUser; it also needs the JWT
    # settings, or the /slurmdb/ REST endpoints cannot authenticate.
    sl_write "$SL_ETC/slurmdbd.conf" 0600 <<EOF
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$SL_JWT_KEY
DbdHost=$SL_NODE
DbdAddr=127.0.0.1
DbdPort=$SL_DBD_PORT
$dbd_comm
SlurmUser=root
DebugLevel=info
LogFile=$SL_LOG/slurmdbd.log
PidFile=$SL_RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=$SL_DB_USER
StoragePass=$(<"$SL_DB_PASS_FILE")
StorageLoc=$SL_DB_NAME
EOF

    # slurmrestd drops to $SL_REST_OS_USER *before* it reads slurm.conf, and
    # that user cannot traverse a 0700 home. Then it gets a copy (slurm.conf
    # holds no secrets, only paths) in a root-owned world-readable folder.
    SL_REST_CONF=$SL_CONF
    if ! setpriv --reuid="$SL_REST_OS_USER" --regid="$SL_REST_OS_USER" --clear-groups \
        test -r "$SL_CONF"; then
        install -d -m 0755 "$SL_REST_CONF_DIR"
        SL_REST_CONF=$SL_REST_CONF_DIR/slurm.conf
        sl_write "$SL_REST_CONF" 0644 <"$SL_CONF"
    fi
}

# ---------------------------------------------------------------- daemons --

sl_start_munge() {
    sl_forget_stale munged munged
    if sl_alive munged munged || ! sl_munge_ok; then
        # Only start one when nobody answers; a foreign munged is reused and
        # never stopped (no PID file of ours).
        install -d -o munge -g munge -m 0755 /run/munge
        install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
        tb_start munged "$SL_LOG/munged.out" \
            setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F --force
        sl_wait 10 "munged" sl_munge_ok
    else
        tb_log "reusing the machine's munged"
    fi
}

# Chooses the database, starts a private MariaDB when needed, and makes sure
# the accounting database and its user exist. Sets SL_DB_PORT.
sl_start_db() {
    local mode pass sql
    sl_forget_stale mariadbd mariadbd
    if sl_alive mariadbd mariadbd; then
        mode=private
    elif [[ "${YG_SLURM_PRIVATE_DB:-0}" != 1 ]] && sl_db_ok "$SL_SHARED_DB_PORT"; then
        mode=shared
    else
        mode=private
    fi
    # A switch of database means a new, empty accounting DB: start clean.
    if [[ -f "$SL_DB_MODE_FILE" && "$(<"$SL_DB_MODE_FILE")" != "$mode" ]]; then
        rm -f "$TB_HOME/data/db.ready" "$TB_HOME/data/cluster.ready"
    fi
    echo "$mode" >"$SL_DB_MODE_FILE"

    pass=$(<"$SL_DB_PASS_FILE")
    sql="CREATE DATABASE IF NOT EXISTS $SL_DB_NAME;"
    local host
    for host in 127.0.0.1 localhost; do
        sql+="CREATE USER IF NOT EXISTS '$SL_DB_USER'@'$host' IDENTIFIED BY '$pass';"
        sql+="ALTER USER '$SL_DB_USER'@'$host' IDENTIFIED BY '$pass';"
        sql+="GRANT ALL ON $SL_DB_NAME.* TO '$SL_DB_USER'@'$host';"
    done
    # A fresh state dir (no marker) means a fresh cluster: drop what an
    # earlier testbed left in the database, or old accounts/jobs reappear.
    if [[ ! -f "$TB_HOME/data/db.ready" ]]; then
        sql="DROP DATABASE IF EXISTS $SL_DB_NAME;$sql"
        rm -f "$TB_HOME/data/cluster.ready"
    fi

    if [[ "$mode" == shared ]]; then
        tb_log "reusing MariaDB on 127.0.0.1:$SL_SHARED_DB_PORT (database $SL_DB_NAME)"
        mariadb -h127.0.0.1 -P"$SL_SHARED_DB_PORT" -uroot -e "$sql"
        SL_DB_PORT=$SL_SHARED_DB_PORT
    else
        if ! sl_alive mariadbd mariadbd; then
            sl_need_port mariadbd "$SL_PRIV_DB_PORT"
            # Only needed without a machine MariaDB; apt must not start it.
            [[ -x /usr/sbin/mariadbd ]] || tb_apt_install mariadb-server
            mkdir -p "$SL_MYSQL"/{data,run}
            if [[ ! -d "$SL_MYSQL/data/mysql" ]]; then
                # root, not mysql: the datadir is under a 0700 home.
                mariadb-install-db --no-defaults --user=root --datadir="$SL_MYSQL/data" \
                    --auth-root-authentication-method=socket --skip-test-db \
                    >>"$SL_LOG/mariadb-install.out" 2>&1
            fi
            # --no-defaults ignores /etc/mysql, so it never collides with a
            # distro MariaDB; the small buffer pool keeps RSS ~126 MiB.
            tb_start mariadbd "$SL_LOG/mariadbd.out" \
                /usr/sbin/mariadbd --no-defaults --user=root --datadir="$SL_MYSQL/data" \
                --socket="$SL_MYSQL/run/mysqld.sock" --pid-file="$SL_MYSQL/run/mariadb.pid" \
                --port="$SL_PRIV_DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
                --innodb-buffer-pool-size=128M --innodb-log-file-size=64M \
                --innodb-lock-wait-timeout=900 --max-allowed-packet=16M
        fi
        sl_wait 60 "private MariaDB" sl_priv_sql -e 'select 1'
        sl_priv_sql -e "$sql"
        SL_DB_PORT=$SL_PRIV_DB_PORT
    fi
    touch "$TB_HOME/data/db.ready"
}

sl_start_slurmdbd() {
    sl_forget_stale slurmdbd slurmdbd
    if ! sl_alive slurmdbd slurmdbd; then
        sl_need_port slurmdbd "$SL_DBD_PORT"
        tb_start slurmdbd "$SL_LOG/slurmdbd.out" /usr/sbin/slurmdbd -D
    fi
    sl_wait 60 "slurmdbd on port $SL_DBD_PORT" tb_port_open 127.0.0.1 "$SL_DBD_PORT"
    # The cluster must exist in accounting before slurmctld registers.
    if [[ ! -f "$TB_HOME/data/cluster.ready" ]]; then
        if ! sacctmgr -i -n list cluster format=cluster | grep -qw "$SL_CLUSTER"; then
            sacctmgr -i add cluster "$SL_CLUSTER" >/dev/null
        fi
        touch "$TB_HOME/data/cluster.ready"
    fi
}

sl_start_slurmctld() {
    sl_forget_stale slurmctld slurmctld
    if ! sl_alive slurmctld slurmctld; then
        sl_need_port slurmctld "$SL_CTLD_PORT"
        # -i: ignore job/node state that no longer matches a rewritten config
        # instead of refusing to start.
        tb_start slurmctld "$SL_LOG/slurmctld.out" /usr/sbin/slurmctld -D -i
    fi
    sl_wait 60 "slurmctld (scontrol ping)" sl_ctld_ok
}

sl_start_slurmd() {
    sl_forget_stale slurmd slurmd
    if ! sl_alive slurmd slurmd; then
        sl_need_port slurmd "$SL_SLURMD_PORT"
        tb_start slurmd "$SL_LOG/slurmd.out" /usr/sbin/slurmd -D
    fi
}

sl_start_slurmrestd() {
    sl_forget_stale slurmrestd slurmrestd
    if ! sl_alive slurmrestd slurmrestd; then
        sl_need_port slurmrestd "$SL_REST_PORT"
        # SLURM_JWT=daemon + rest_auth/jwt: every request carries its own
        # token; 127.0.0.1 only, as the REST API trusts any valid token.
        tb_start slurmrestd "$SL_LOG/slurmrestd.out" \
            env SLURM_JWT=daemon SLURM_CONF="$SL_REST_CONF" /usr/sbin/slurmrestd -a rest_auth/jwt \
            -u "$SL_REST_OS_USER" -g "$SL_REST_OS_USER" "127.0.0.1:$SL_REST_PORT"
    fi
    sl_wait 30 "slurmrestd on port $SL_REST_PORT" tb_port_open 127.0.0.1 "$SL_REST_PORT"
}

# The node registers a moment after slurmd starts; a stale DOWN/DRAIN from an
# earlier run (e.g. unclean stop) is resumed instead of waiting for nothing.
sl_wait_node() {
    local i state
    for ((i = 0; i < 90 * 5; i++)); do
        state=$(sl_node_state || true)
        sl_state_usable "$state" && return 0
        if [[ "$state" =~ (down|drain|fail) ]] && ((i % 25 == 0)); then
            scontrol update nodename="$SL_NODE" state=resume >/dev/null 2>&1 || true
        fi
        sleep 0.2
    done
    tb_die "node $SL_NODE is '${state:-unknown}', not idle (logs: $SL_LOG)"
}

# ---------------------------------------------------------------- commands --

cmd_up() {
    local t0=$SECONDS
    [[ $(id -u) -eq 0 ]] || tb_die "must run as root (munged, slurmd and job owners need it)"
    sl_install
    SL_CONF_CHANGED=0
    sl_secrets
    sl_start_munge
    SL_DB_PORT=
    sl_start_db
    sl_write_configs "$SL_DB_PORT"
    if ((SL_CONF_CHANGED)) && sl_alive slurmctld slurmctld; then
        tb_log "config changed while running: run '$0 down' and '$0 up' to apply it"
    fi
    sl_start_slurmdbd
    sl_start_slurmctld
    sl_start_slurmd
    sl_start_slurmrestd
    sl_wait_node
    sl_wait 30 "slurmrestd ping with a JWT" sl_rest_ping_ok
    tb_log "up in $((SECONDS - t0)) s: $SL_REST_URL (node $SL_NODE idle)"
}

cmd_down() {
    local i ids
    if sl_alive slurmctld slurmctld && sl_ctld_ok; then
        # Cancel first so slurmstepd processes end cleanly with their jobs;
        # every job of this cluster is a testbed job.
        ids=$(squeue -h -o %i 2>/dev/null || true)
        if [[ -n "$ids" ]]; then
            tb_log "cancelling jobs: ${ids//$'\n'/ }"
            # shellcheck disable=SC2086 # one job id per word
            scancel $ids 2>/dev/null || true
            for ((i = 0; i < 20 * 5; i++)); do
                [[ -z "$(squeue -h -t R,CG -o %i 2>/dev/null)" ]] && break
                sleep 0.2
            done
        fi
    fi
    # Reverse start order; foreign munged/MariaDB have no PID file here.
    sl_stop slurmrestd slurmrestd 10
    sl_stop slurmd slurmd
    sl_stop slurmctld slurmctld
    sl_stop slurmdbd slurmdbd
    sl_stop mariadbd mariadbd
    sl_stop munged munged 10
    rm -rf "$SL_REST_CONF_DIR"
    rmdir --ignore-fail-on-non-empty "$(dirname "$SL_REST_CONF_DIR")" 2>/dev/null || true
}

cmd_status() {
    local ok=0 d state
    sl_line() { printf '%-11s %s\n' "$1" "$2"; }
    if sl_alive munged munged; then
        if sl_munge_ok; then
            sl_line munged "running (pid $(<"$SL_RUN/munged.pid"))"
        else
            sl_line munged "not answering (pid $(<"$SL_RUN/munged.pid"))"
            ok=1
        fi
    elif sl_munge_ok; then
        sl_line munged "external (answers, not ours)"
    else
        sl_line munged stopped
        ok=1
    fi
    if sl_alive mariadbd mariadbd; then
        sl_line mariadb "private, running (pid $(<"$SL_RUN/mariadbd.pid"), port $SL_PRIV_DB_PORT)"
    elif [[ "$(cat "$SL_DB_MODE_FILE" 2>/dev/null)" == shared ]] && sl_db_ok "$SL_SHARED_DB_PORT"; then
        sl_line mariadb "shared 127.0.0.1:$SL_SHARED_DB_PORT (database $SL_DB_NAME)"
    else
        sl_line mariadb stopped
        ok=1
    fi
    for d in slurmdbd slurmctld slurmd slurmrestd; do
        if sl_alive "$d" "$d"; then
            sl_line "$d" "running (pid $(<"$SL_RUN/$d.pid"))"
        else
            sl_line "$d" stopped
            ok=1
        fi
    done
    if sl_alive slurmctld slurmctld; then
        state=$(sl_node_state || true)
        sl_line node "$SL_NODE ${state:-unknown}"
        sl_state_usable "$state" || ok=1
    else
        sl_line node unknown
        ok=1
    fi
    if sl_alive slurmrestd slurmrestd && sl_alive slurmctld slurmctld && sl_rest_ping_ok; then
        sl_line rest "$SL_REST_URL/slurm/$SL_API/ping ok"
    else
        sl_line rest "no answer at $SL_REST_URL"
        ok=1
    fi
    return "$ok"
}

cmd_env() {
    # Quote values so that paths with spaces survive eval.
    printf 'export SLURMRESTD_URL=%q\n' "$SL_REST_URL"
    printf 'export SLURMRESTD_API_VERSION=%q\n' "$SL_API"
    printf 'export SLURM_JWT_KEY=%q\n' "$SL_JWT_KEY"
    printf 'export SLURM_CONF=%q\n' "$SL_CONF"
    printf 'export SLURM_USER=%q\n' "$SL_TOKEN_USER"
    printf 'export SLURM_CLUSTER=%q\n' "$SL_CLUSTER"
    printf 'export SLURM_TESTBED_PARTITION=%q\n' debug
    printf 'export SLURM_TESTBED_NODE=%q\n' "$SL_NODE"
    # Absolute paths: the tests must not depend on PATH; SLURM_CONF (above)
    # points every one of them at this cluster.
    local c
    for c in sacctmgr scontrol sbatch scancel squeue sinfo sacct sshare; do
        printf 'export SLURM_%s=%q\n' "${c^^}" "/usr/bin/$c"
    done
}

main() {
    case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *)
        echo "usage: $0 up|down|status|env" >&2
        exit 2
        ;;
    esac
}

main "$@"
