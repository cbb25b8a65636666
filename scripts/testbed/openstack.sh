#!/usr/bin/env bash
# A real, small OpenStack on 127.0.0.1 for Yunguan's contract and e2e tests:
# Keystone, Placement, Nova (API, conductor, scheduler, compute on the fake
# virt driver), Cinder API, Neutron API (ML2, no agents) and Glance API (file
# store), the newest PyPI releases in one virtualenv, each API under uwsgi.
#
#   openstack.sh up [--unified-limits|--db-quotas]  start what is missing, wait until usable
#   openstack.sh down                               stop what this script started
#   openstack.sh status [--deep]                    exit 0 only when everything is up
#   openstack.sh env                                eval-able exports (clouds.yaml, ...)
#   openstack.sh reset                              down, then forget the cloud (keeps the venv)
#
# Environment:
#   OPENSTACK_API_PROCESSES=N          uWSGI worker processes per API (default 2;
#   OPENSTACK_API_THREADS=N            threads per process, default 4)
#   OPENSTACK_QUOTA_DRIVER=db|unified  Nova's quota driver (default: the one recorded
#                                      at the last `up`, else db). `unified` uses
#                                      Keystone unified limits.
#   OPENSTACK_PRIVATE_INFRA=1          start private MariaDB/RabbitMQ even when the
#                                      machine's own ones answer (first `up` only).
#
# The recipe (ports, start order, gotchas) is the one verified in the team's
# testbed notes; comments below say why where a step is not obvious.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
tb_init openstack

VENV=$TB_HOME/venv
ETC=$TB_HOME/etc
DATA=$TB_HOME/data
LOG=$TB_HOME/log
RUN=$TB_HOME/run
CONSTRAINTS=$HERE/openstack/constraints.txt
CLOUDS_YAML=$TB_HOME/clouds.yaml
SMOKE=$HERE/openstack_smoke.py

PIP_PACKAGES=(nova==34.0.0 keystone==30.0.0 openstack-placement==16.0.0 cinder==29.0.0
    neutron==29.0.0 glance==33.0.0 PyMySQL uwsgi pyroute2)

# Ports are moved off the defaults so the stack can share a machine with other
# services (the CI machine already runs MariaDB and RabbitMQ on theirs).
KEYSTONE_PORT=15000
PLACEMENT_PORT=18778
NOVA_PORT=18774
CINDER_PORT=18776
NEUTRON_PORT=19696
GLANCE_PORT=19292
PRIVATE_DB_PORT=13306
PRIVATE_MQ_PORT=15673
PRIVATE_EPMD_PORT=14369
PRIVATE_DIST_PORT=25680
SHARED_DB_PORT=3306
SHARED_MQ_PORT=5672

# Names on a shared MariaDB/RabbitMQ carry this prefix so nothing collides
# with other users of the same server.
DB_PREFIX=yg_os_
DB_USER=yg_os
DB_PASS="db-secret"
MQ_SHARED_VHOST=yg_os
ADMIN_PASS="admin"
SERVICE_PASS="service-secret"
REGION=RegionOne
COMPUTE_HOST=testbed-compute
KEYSTONE_URL=http://127.0.0.1:$KEYSTONE_PORT

# Every OpenStack process this script runs (cmd_up has the start order);
# `down` stops them all in parallel, then the private infrastructure.
OS_SERVICES=(keystone nova-conductor nova-scheduler placement nova-api cinder-api neutron-api glance-api nova-compute)
declare -A API_URL=(
    [keystone]=$KEYSTONE_URL/v3
    [placement]=http://127.0.0.1:$PLACEMENT_PORT/
    [nova-api]=http://127.0.0.1:$NOVA_PORT/
    [cinder-api]=http://127.0.0.1:$CINDER_PORT/
    [neutron-api]=http://127.0.0.1:$NEUTRON_PORT/
    [glance-api]=http://127.0.0.1:$GLANCE_PORT/
)
declare -A STARTED=()

# Worker processes per API. A Python process runs on one core at most (the
# GIL), however many threads it has: with one process per API, Keystone (~80
# ms of CPU per request here: uncached token validation) held provisioning
# 1,000 tenants to one of the two cores. Two per API (~150 MiB each) can use
# both, as an operator runs several API workers. Glance only serves image
# reads here and keeps one.
API_PROCESSES=${OPENSTACK_API_PROCESSES:-2}
API_THREADS=${OPENSTACK_API_THREADS:-4}
# --worker-reload-mercy: on SIGTERM nova-api's worker does not exit by itself;
# uwsgi would wait 60 s for it (tb_stop SIGKILLs at 15 s), now 3 s.
UWSGI_COMMON=(--master --need-app --die-on-term --lazy-apps --enable-threads
    --threads "$API_THREADS" --buffer-size 65535 --add-header "Connection: close"
    --worker-reload-mercy 3)

# ---------------------------------------------------------------- helpers

# pip must see only PyPI and our constraints: the machine's global pip config
# names local indexes, find-links and a constraint file of its own. Empty
# PIP_* values do not override a config file, so the file is dropped too.
venv_pip() {
    PIP_CONFIG_FILE=/dev/null PIP_EXTRA_INDEX_URL='' PIP_FIND_LINKS='' PIP_CONSTRAINT='' \
        "$VENV/bin/pip" "$@"
}

die_with_log() { # NAME MESSAGE
    local f=$LOG/$1.log
    [[ -f $f ]] && tail -n 30 "$f" >&2
    tb_die "$2 (log: $f)"
}

# write_file PATH < CONTENT: replace PATH atomically and only when the content
# changed: `up` rewrites configs while the background schema syncs read them.
write_file() {
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat >"$tmp"
    if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}

pid_of() { [[ -s $RUN/$1.pid ]] && cat "$RUN/$1.pid"; }

# Hash of everything a service reads at start-up (its config files and its
# command line); a running service whose configuration changed (e.g. the
# quota driver, the number of API processes) gets restarted by `up`.
conf_dir_of() {
    case $1 in
        nova-*) echo nova ;;
        *-api) echo "${1%-api}" ;;
        *) echo "$1" ;;
    esac
}
conf_hash() {
    find "$ETC/$(conf_dir_of "$1")" -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1
}

# svc_start NAME CMD... : start NAME unless it already runs with the current
# configuration. Records in STARTED which services this run (re)started.
svc_start() {
    local name=$1 want
    shift
    want=$({ conf_hash "$name"; printf '%s\n' "$@"; } | sha256sum | cut -d' ' -f1)
    if tb_pid_alive "$RUN/$name.pid"; then
        [[ "$(cat "$RUN/$name.confhash" 2>/dev/null)" == "$want" ]] && return 0
        tb_log "$name: configuration changed, restarting"
        tb_stop "$name" 15
    fi
    tb_start "$name" "$LOG/$name.log" "$@"
    echo "$want" >"$RUN/$name.confhash"
    STARTED[$name]=1
}

# wait_api NAME URL SECONDS: like tb_wait_http, but gives up as soon as the
# process dies, and shows its log.
wait_api() {
    local name=$1 url=$2 limit=$3 code i
    for ((i = 0; i < limit * 2; i++)); do
        tb_pid_alive "$RUN/$name.pid" || die_with_log "$name" "$name exited during start-up"
        code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$url" || true)
        [[ $code =~ ^[1-4][0-9][0-9]$ ]] && return 0
        sleep 0.5
    done
    die_with_log "$name" "$name did not answer on $url within ${limit}s"
}

# ---------------------------------------------------------------- install

ensure_host_packages() {
    # uWSGI is built from its sdist: it needs gcc and the Python headers.
    command -v mariadb >/dev/null || tb_apt_install mariadb-client
    tb_apt_install python3-venv python3-dev gcc curl
}

# The venv is the slow part of a cold start (~1-2 min), so it is kept across
# runs and rebuilt only when the pins (or the package list) change.
ensure_venv() {
    local want marker=$VENV/.yunguan-constraints
    want=$({ cat "$CONSTRAINTS"; echo "${PIP_PACKAGES[*]}"; /usr/bin/python3 --version; } | sha256sum | cut -d' ' -f1)
    if [[ -x $VENV/bin/python && "$(cat "$marker" 2>/dev/null)" == "$want" ]]; then
        return 0
    fi
    tb_log "building the services venv (constraints changed or venv missing)"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    venv_pip install -q -c "$CONSTRAINTS" "${PIP_PACKAGES[@]}" >"$LOG/pip.log" 2>&1 ||
        die_with_log pip "pip install failed"
    # Written last: an interrupted build has no marker and is redone.
    echo "$want" >"$marker"
}

# ---------------------------------------------------------------- infrastructure

shared_db_works() {
    tb_port_open 127.0.0.1 "$SHARED_DB_PORT" &&
        mariadb -h127.0.0.1 -P"$SHARED_DB_PORT" -uroot -e 'select 1' >/dev/null 2>&1
}

mq_login_works() { # PORT VHOST
    tb_port_open 127.0.0.1 "$1" &&
        "$VENV/bin/python" -c 'import sys, kombu
kombu.Connection(sys.argv[1], connect_timeout=5).connect()' "amqp://guest:guest@127.0.0.1:$1/$2" >/dev/null 2>&1
}

# The choice between the machine's MariaDB/RabbitMQ and private ones is made
# once and recorded: the cloud's state lives in whichever was picked.
choose_infra() {
    local f=$DATA/infra.env
    if [[ -f $f ]]; then
        # shellcheck source=/dev/null
        source "$f"
        return 0
    fi
    DB_MODE=private DB_PORT=$PRIVATE_DB_PORT MQ_MODE=private MQ_PORT=$PRIVATE_MQ_PORT MQ_VHOST=
    if [[ ${OPENSTACK_PRIVATE_INFRA:-0} != 1 ]]; then
        if shared_db_works; then DB_MODE=shared DB_PORT=$SHARED_DB_PORT; fi
        if mq_login_works "$SHARED_MQ_PORT" ""; then
            MQ_MODE=shared MQ_PORT=$SHARED_MQ_PORT
            # An own vhost keeps our queues apart; creating it needs
            # rabbitmqctl on this host, else the default vhost will do.
            if command -v rabbitmqctl >/dev/null; then
                timeout 60 rabbitmqctl -q add_vhost "$MQ_SHARED_VHOST" >/dev/null 2>&1 || true # fails if it exists
                timeout 60 rabbitmqctl -q set_permissions -p "$MQ_SHARED_VHOST" guest '.*' '.*' '.*' >/dev/null 2>&1 || true
            fi
            mq_login_works "$SHARED_MQ_PORT" "$MQ_SHARED_VHOST" && MQ_VHOST=$MQ_SHARED_VHOST
        fi
    fi
    printf 'DB_MODE=%s\nDB_PORT=%s\nMQ_MODE=%s\nMQ_PORT=%s\nMQ_VHOST=%s\n' \
        "$DB_MODE" "$DB_PORT" "$MQ_MODE" "$MQ_PORT" "$MQ_VHOST" >"$f"
    tb_log "MariaDB: $DB_MODE (port $DB_PORT); RabbitMQ: $MQ_MODE (port $MQ_PORT, vhost '${MQ_VHOST:-/}')"
}

db_root() { # SQL -> run as the server's root
    if [[ $DB_MODE == private ]]; then
        mariadb --socket="$RUN/mysql/mysqld.sock" -uroot -N -B -e "$1"
    else
        mariadb -h127.0.0.1 -P"$DB_PORT" -uroot -N -B -e "$1"
    fi
}
db_sql() { # SQL -> run as the testbed's own user (UTC session)
    MYSQL_PWD=$DB_PASS mariadb -h127.0.0.1 -P"$DB_PORT" -u"$DB_USER" -N -B \
        -e "SET time_zone='+00:00'; $1"
}
db_url() { echo "mysql+pymysql://$DB_USER:$DB_PASS@127.0.0.1:$DB_PORT/$DB_PREFIX$1?charset=utf8"; }

start_private_db() {
    local d=$TB_HOME/mysql
    if [[ ! -d $d/mysql ]]; then
        tb_apt_install mariadb-server
        # Runs as root: $TB_HOME sits under root's 0700 home by default,
        # which the mysql user cannot enter.
        mariadb-install-db --no-defaults --user=root --datadir="$d" --skip-test-db >"$LOG/mariadb-install.log" 2>&1 ||
            die_with_log mariadb-install "mariadb-install-db failed"
    fi
    mkdir -p "$RUN/mysql"
    tb_start mariadb "$LOG/mariadb.log" mariadbd --no-defaults --user=root --datadir="$d" \
        --port="$PRIVATE_DB_PORT" --socket="$RUN/mysql/mysqld.sock" --bind-address=127.0.0.1 \
        --skip-name-resolve --skip-log-bin --innodb-buffer-pool-size=128M \
        --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --sync-binlog=0 \
        --max-connections=1000 --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
    tb_wait_port 127.0.0.1 "$PRIVATE_DB_PORT" 60 || die_with_log mariadb "private MariaDB did not start"
    local i
    for ((i = 0; i < 50; i++)); do db_root 'select 1' >/dev/null 2>&1 && return 0; sleep 0.2; done
    die_with_log mariadb "private MariaDB refuses root over its socket"
}

start_private_mq() {
    local base=$TB_HOME/rabbitmq epmd erts_epmd=(/usr/lib/erlang/erts-*/bin/epmd)
    tb_apt_install rabbitmq-server
    mkdir -p "$ETC/rabbitmq" "$base"
    write_file "$ETC/rabbitmq/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$PRIVATE_MQ_PORT
loopback_users.guest = true
log.console = false
log.file.level = warning
EOF
    echo '[].' >"$ETC/rabbitmq/enabled_plugins"
    # An epmd of our own, on its own port: the machine's epmd (if any) is not ours to use or stop.
    epmd=$(command -v epmd || echo "${erts_epmd[0]}")
    tb_start epmd "$LOG/epmd.log" "$epmd" -port "$PRIVATE_EPMD_PORT" -address 127.0.0.1
    tb_wait_port 127.0.0.1 "$PRIVATE_EPMD_PORT" 10 || die_with_log epmd "epmd did not start"
    tb_start rabbitmq "$LOG/rabbitmq.log" env HOME="$base" \
        RABBITMQ_NODENAME=testbed@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$PRIVATE_MQ_PORT" RABBITMQ_DIST_PORT="$PRIVATE_DIST_PORT" \
        ERL_EPMD_PORT="$PRIVATE_EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_CONFIG_FILE="$ETC/rabbitmq/rabbitmq" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$ETC/rabbitmq/enabled_plugins" \
        RABBITMQ_MNESIA_BASE="$base/mnesia" RABBITMQ_LOG_BASE="$LOG/rabbitmq" \
        RABBITMQ_PID_FILE="$RUN/rabbitmq-beam.pid" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
        /usr/lib/rabbitmq/bin/rabbitmq-server
}

ensure_infra() {
    if [[ $DB_MODE == private ]]; then
        start_private_db
    else
        shared_db_works || tb_die "the shared MariaDB on :$DB_PORT no longer answers (this cloud's state is there)"
    fi
    if [[ $MQ_MODE == private ]]; then
        start_private_mq
    fi
    local db
    local sql="CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
               CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';"
    for db in keystone placement nova_api nova_cell0 nova cinder neutron glance; do
        sql+="CREATE DATABASE IF NOT EXISTS $DB_PREFIX$db;
              GRANT ALL ON $DB_PREFIX$db.* TO '$DB_USER'@'127.0.0.1';
              GRANT ALL ON $DB_PREFIX$db.* TO '$DB_USER'@'localhost';"
    done
    db_root "$sql"
    if [[ $MQ_MODE == private ]]; then
        # RabbitMQ boots in 5-20 s; waited for here so the DB work above overlaps it.
        tb_wait_port 127.0.0.1 "$MQ_PORT" 90 || die_with_log rabbitmq "private RabbitMQ did not start"
    else
        mq_login_works "$MQ_PORT" "$MQ_VHOST" || tb_die "the shared RabbitMQ on :$MQ_PORT refuses guest (vhost '${MQ_VHOST:-/}')"
    fi
}

# ---------------------------------------------------------------- configuration

transport_url() { echo "rabbit://guest:guest@127.0.0.1:$MQ_PORT/$MQ_VHOST"; }

# Service-user credentials, as keystoneauth reads them from any section.
auth_block() { # USER [with-region]
    cat <<EOF
auth_type = password
auth_url = $KEYSTONE_URL
project_name = service
user_domain_name = Default
project_domain_name = Default
username = $1
password = $SERVICE_PASS
EOF
    [[ ${2:-} == with-region ]] && echo "region_name = $REGION"
    return 0
}
authtoken_block() { # USER
    echo "[keystone_authtoken]"
    echo "www_authenticate_uri = $KEYSTONE_URL"
    auth_block "$1"
    # Services call each other with a service token; require it to carry the service role.
    echo "service_token_roles_required = true"
}
common_blocks() { # SERVICE: sections every service shares
    cat <<EOF
[oslo_concurrency]
lock_path = $DATA/$1/locks
[oslo_messaging_notifications]
driver = noop
EOF
}
# Small DB pools: the machine's MariaDB is shared (max_connections 151 by default).
db_block() { # SECTION DBNAME
    printf '[%s]\nconnection = %s\nmax_pool_size = 2\nmax_overflow = 8\n' "$1" "$(db_url "$2")"
}

write_keystone_conf() {
    mkdir -p "$ETC/keystone" "$DATA/keystone"
    write_file "$ETC/keystone/keystone.conf" <<EOF
[DEFAULT]
debug = false
$(db_block database keystone)
[token]
provider = fernet
[fernet_tokens]
key_repository = $DATA/keystone/fernet-keys
[fernet_receipts]
key_repository = $DATA/keystone/fernet-keys
[credential]
key_repository = $DATA/keystone/credential-keys
$(common_blocks keystone)
EOF
}

write_placement_conf() {
    mkdir -p "$ETC/placement"
    write_file "$ETC/placement/placement.conf" <<EOF
[DEFAULT]
debug = false
[api]
auth_strategy = keystone
$(db_block placement_database placement)
$(authtoken_block placement)
$(common_blocks placement)
EOF
}

write_nova_conf() {
    local quota="" endpoint_id
    mkdir -p "$ETC/nova" "$DATA/nova"
    write_file "$ETC/nova/api-paste.ini" <"$VENV/etc/nova/api-paste.ini"
    if [[ $QUOTA_DRIVER == unified ]]; then
        endpoint_id=$(cat "$DATA/compute-endpoint-id" 2>/dev/null || true)
        # oslo.limit reads limits and endpoints: system-scoped reads.
        quota="[quota]
driver = nova.quota.UnifiedLimitsDriver
[oslo_limit]
$(auth_block nova with-region | grep -v '^project_')
system_scope = all
endpoint_id = $endpoint_id"
    fi
    # state_path and friends are written as absolute paths: oslo.config would
    # read "$word" as a reference to another option.
    write_file "$ETC/nova/nova.conf" <<EOF
[DEFAULT]
debug = false
transport_url = $(transport_url)
compute_driver = fake.PredictableNodeUUIDDriver
host = $COMPUTE_HOST
my_ip = 127.0.0.1
state_path = $DATA/nova
osapi_compute_workers = 1
metadata_workers = 1
heal_instance_info_cache_interval = -1
# nova-compute waits 60 s on SIGTERM by default.
graceful_shutdown_timeout = 5
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $ETC/nova/api-paste.ini
$(db_block api_database nova_api)
$(db_block database nova)
$(authtoken_block nova)
[service_user]
send_service_user_token = true
$(auth_block nova with-region)
[placement]
valid_interfaces = public
$(auth_block placement with-region)
[neutron]
valid_interfaces = public
$(auth_block neutron with-region)
[glance]
valid_interfaces = public
[cinder]
os_region_name = $REGION
[conductor]
workers = 1
[scheduler]
workers = 1
# Maps the compute host into cell1 without a manual discover_hosts.
discover_hosts_in_cells_interval = 2
[vnc]
enabled = false
[spice]
enabled = false
[os_vif_ovs]
ovsdb_connection = unix:/nonexistent
$(common_blocks nova)
$quota
EOF
    # The fake driver's node identity: written before the first start so a
    # warm restart finds the same node (gotcha 3).
    [[ -s $DATA/nova/compute_id ]] ||
        /usr/bin/python3 -c 'import sys, uuid; print(uuid.uuid5(uuid.NAMESPACE_DNS, sys.argv[1]))' \
            "$COMPUTE_HOST" >"$DATA/nova/compute_id"
}

write_cinder_conf() {
    mkdir -p "$ETC/cinder" "$DATA/cinder"
    write_file "$ETC/cinder/api-paste.ini" <"$VENV/etc/cinder/api-paste.ini"
    write_file "$ETC/cinder/cinder.conf" <<EOF
[DEFAULT]
debug = false
transport_url = $(transport_url)
auth_strategy = keystone
osapi_volume_workers = 1
enabled_backends =
# No volume service, so no availability zone: without the fallback every
# volume create is refused. With it a volume is created and counted in the
# quota, and stays "creating" (the sync's usage tests need one).
allow_availability_zone_fallback = true
state_path = $DATA/cinder
api_paste_config = $ETC/cinder/api-paste.ini
my_ip = 127.0.0.1
$(db_block database cinder)
$(authtoken_block cinder)
[service_user]
send_service_user_token = true
$(auth_block cinder with-region)
$(common_blocks cinder)
EOF
}

write_neutron_conf() {
    mkdir -p "$ETC/neutron/plugins/ml2" "$DATA/neutron"
    write_file "$ETC/neutron/api-paste.ini" <"$VENV/etc/neutron/api-paste.ini"
    write_file "$ETC/neutron/neutron.conf" <<EOF
[DEFAULT]
debug = false
transport_url = $(transport_url)
core_plugin = ml2
# The L3 API (no agent runs): without it Neutron has no floatingip/router quotas.
service_plugins = router
auth_strategy = keystone
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
state_path = $DATA/neutron
api_paste_config = $ETC/neutron/api-paste.ini
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
$(db_block database neutron)
$(authtoken_block neutron)
[nova]
$(auth_block nova with-region)
$(common_blocks neutron)
EOF
    write_file "$ETC/neutron/plugins/ml2/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,vlan
tenant_network_types =
mechanism_drivers =
extension_drivers = port_security
[ml2_type_flat]
flat_networks = *
EOF
}

write_glance_conf() {
    mkdir -p "$ETC/glance" "$DATA/glance"/{images,staging,tasks}
    write_file "$ETC/glance/glance-api-paste.ini" <"$VENV/etc/glance/glance-api-paste.ini"
    write_file "$ETC/glance/glance-api.conf" <<EOF
[DEFAULT]
debug = false
workers = 1
enabled_backends = fs:file
$(db_block database glance)
$(authtoken_block glance)
[paste_deploy]
flavor = keystone
config_file = $ETC/glance/glance-api-paste.ini
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $DATA/glance/images
[os_glance_staging_store]
filesystem_store_datadir = $DATA/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = $DATA/glance/tasks
$(common_blocks glance)
EOF
}

write_clouds_yaml() {
    # testbed-admin is project-scoped (most APIs); testbed-admin-system is
    # system-scoped, which Keystone requires for writing unified limits.
    write_file "$CLOUDS_YAML" <<EOF
clouds:
  testbed-admin:
    auth:
      auth_url: $KEYSTONE_URL/v3
      username: admin
      password: $ADMIN_PASS
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: $REGION
    interface: public
    identity_api_version: 3
  testbed-admin-system:
    auth:
      auth_url: $KEYSTONE_URL/v3
      username: admin
      password: $ADMIN_PASS
      user_domain_name: Default
      system_scope: all
    region_name: $REGION
    interface: public
    identity_api_version: 3
EOF
}

write_configs() {
    write_keystone_conf
    write_placement_conf
    write_nova_conf
    write_cinder_conf
    write_neutron_conf
    write_glance_conf
    write_clouds_yaml
}

# ---------------------------------------------------------------- first-run state

keystone_bootstrap() {
    [[ -f $DATA/.keystone-bootstrapped ]] && return 0
    local km=("$VENV/bin/keystone-manage" --config-file "$ETC/keystone/keystone.conf")
    local who
    who=(--keystone-user "$(id -un)" --keystone-group "$(id -gn)")
    {
        "${km[@]}" db_sync &&
            "${km[@]}" fernet_setup "${who[@]}" &&
            "${km[@]}" credential_setup "${who[@]}" &&
            "${km[@]}" bootstrap --bootstrap-password "$ADMIN_PASS" --bootstrap-region-id "$REGION" \
                --bootstrap-admin-url "$KEYSTONE_URL/v3/" --bootstrap-internal-url "$KEYSTONE_URL/v3/" \
                --bootstrap-public-url "$KEYSTONE_URL/v3/"
    } >>"$LOG/keystone-manage.log" 2>&1 || die_with_log keystone-manage "keystone bootstrap failed"
    chmod -R go-rwx "$DATA/keystone/fernet-keys" "$DATA/keystone/credential-keys"
    touch "$DATA/.keystone-bootstrapped"
}

nova_schema() {
    local nm=("$VENV/bin/nova-manage" --config-file "$ETC/nova/nova.conf")
    "${nm[@]}" api_db sync
    "${nm[@]}" cell_v2 map_cell0 --database_connection "$(db_url nova_cell0)"
    "${nm[@]}" cell_v2 list_cells | grep -q ' cell1 ' || "${nm[@]}" cell_v2 create_cell --name cell1
    "${nm[@]}" db sync
}

# Schemas other than Keystone's, in parallel (neutron is the slowest, ~30 s).
# Started in the background so Keystone starts and the catalog is written
# meanwhile; wait_schemas collects them.
SCHEMA_PIDS=()
start_schemas() {
    [[ -f $DATA/.schemas-done ]] && return 0
    local b=$VENV/bin
    "$b/placement-manage" --config-file "$ETC/placement/placement.conf" db sync >"$LOG/dbsync-placement.log" 2>&1 &
    SCHEMA_PIDS+=("$!:placement")
    nova_schema >"$LOG/dbsync-nova.log" 2>&1 &
    SCHEMA_PIDS+=("$!:nova")
    "$b/cinder-manage" --config-file "$ETC/cinder/cinder.conf" db sync >"$LOG/dbsync-cinder.log" 2>&1 &
    SCHEMA_PIDS+=("$!:cinder")
    "$b/neutron-db-manage" --config-file "$ETC/neutron/neutron.conf" \
        --config-file "$ETC/neutron/plugins/ml2/ml2_conf.ini" upgrade heads >"$LOG/dbsync-neutron.log" 2>&1 &
    SCHEMA_PIDS+=("$!:neutron")
    "$b/glance-manage" --config-file "$ETC/glance/glance-api.conf" db sync >"$LOG/dbsync-glance.log" 2>&1 &
    SCHEMA_PIDS+=("$!:glance")
}
wait_schemas() {
    local entry failed=""
    for entry in "${SCHEMA_PIDS[@]}"; do
        wait "${entry%%:*}" || failed+=" ${entry#*:}"
    done
    [[ -z $failed ]] || die_with_log "dbsync-${failed##* }" "schema sync failed for:$failed"
    ((${#SCHEMA_PIDS[@]} == 0)) || touch "$DATA/.schemas-done"
}

# Services, users, endpoints (and unified limits) in Keystone. Skipped when
# the same catalog script already ran for the same quota driver.
ensure_catalog() {
    local marker=$DATA/.catalog want args=()
    want="$(sha256sum "$HERE/openstack/catalog.py" | cut -d' ' -f1) $QUOTA_DRIVER"
    [[ "$(cat "$marker" 2>/dev/null)" == "$want" && -s $DATA/compute-endpoint-id ]] && return 0
    [[ $QUOTA_DRIVER == unified ]] && args+=(--unified-limits)
    TB_AUTH_URL=$KEYSTONE_URL/v3 TB_ADMIN_PASSWORD=$ADMIN_PASS TB_SERVICE_PASSWORD=$SERVICE_PASS \
        TB_REGION=$REGION TB_NOVA_URL=http://127.0.0.1:$NOVA_PORT/v2.1 \
        TB_PLACEMENT_URL=http://127.0.0.1:$PLACEMENT_PORT TB_CINDER_URL=http://127.0.0.1:$CINDER_PORT/v3 \
        TB_NEUTRON_URL=http://127.0.0.1:$NEUTRON_PORT TB_GLANCE_URL=http://127.0.0.1:$GLANCE_PORT \
        "$VENV/bin/python" "$HERE/openstack/catalog.py" "${args[@]}" >"$LOG/catalog.out" 2>"$LOG/catalog.log" ||
        die_with_log catalog "registering the catalog in Keystone failed"
    tail -n 1 "$LOG/catalog.out" >"$DATA/compute-endpoint-id"
    echo "$want" >"$marker"
}

# ---------------------------------------------------------------- services

start_uwsgi() { # NAME PORT MODULE [ENV=VALUE...]
    local name=$1 port=$2 module=$3 processes=$API_PROCESSES
    shift 3
    [[ $name == glance-api ]] && processes=1
    svc_start "$name" env "$@" "$VENV/bin/uwsgi" "${UWSGI_COMMON[@]}" --processes "$processes" \
        --procname-prefix-spaced "yg-os-$name" --http-socket "127.0.0.1:$port" --module "$module"
}

start_nova_service() { # NAME (conductor, scheduler, compute)
    svc_start "nova-$1" "$VENV/bin/nova-$1" --config-file "$ETC/nova/nova.conf"
}

# nova-compute pings the conductor over RPC at start; if the conductor's
# queue does not exist yet the call sits out a 60 s timeout (gotcha 4).
wait_conductor() { # LOG_OFFSET
    local i
    for ((i = 0; i < 180; i++)); do
        tb_pid_alive "$RUN/nova-conductor.pid" || die_with_log nova-conductor "nova-conductor exited"
        tail -c +"$(($1 + 1))" "$LOG/nova-conductor.log" 2>/dev/null | grep -q 'Starting conductor node' && {
            sleep 2
            return 0
        }
        sleep 0.5
    done
    die_with_log nova-conductor "nova-conductor did not start within 90 s"
}

# Ready = the compute service heartbeats after SINCE (its log says nothing at
# INFO in nova 34) and the scheduler mapped its host into cell1. Read from the
# DB: `nova-manage cell_v2 list_hosts` costs seconds of CPU per poll.
wait_compute() { # SINCE_EPOCH
    local since=$1 i beat mapped
    for ((i = 0; i < 240; i++)); do
        tb_pid_alive "$RUN/nova-compute.pid" || die_with_log nova-compute "nova-compute exited"
        beat=$(db_sql "SELECT COUNT(*) FROM ${DB_PREFIX}nova.services WHERE host='$COMPUTE_HOST'
            AND \`binary\`='nova-compute' AND deleted=0 AND updated_at >= FROM_UNIXTIME($since)" 2>/dev/null || echo 0)
        mapped=$(db_sql "SELECT COUNT(*) FROM ${DB_PREFIX}nova_api.host_mappings WHERE host='$COMPUTE_HOST'" 2>/dev/null || echo 0)
        ((beat > 0 && mapped > 0)) && return 0
        sleep 0.5
    done
    die_with_log nova-compute "nova-compute did not heartbeat and get mapped within 120 s"
}

# ---------------------------------------------------------------- commands

resolve_quota_driver() { # [flag value]
    local f=$DATA/quota-driver
    QUOTA_DRIVER=${1:-${OPENSTACK_QUOTA_DRIVER:-$(cat "$f" 2>/dev/null || echo db)}}
    [[ $QUOTA_DRIVER == db || $QUOTA_DRIVER == unified ]] ||
        tb_die "quota driver must be db or unified, not '$QUOTA_DRIVER'"
    echo "$QUOTA_DRIVER" >"$f"
}

cmd_up() {
    local flag="" conductor_offset=0 compute_since
    case ${1:-} in
        --unified-limits) flag=unified ;;
        --db-quotas) flag=db ;;
        "") ;;
        *) tb_die "usage: $0 up [--unified-limits|--db-quotas]" ;;
    esac
    local t0=$SECONDS
    ensure_host_packages
    ensure_venv
    resolve_quota_driver "$flag"
    choose_infra
    ensure_infra
    write_configs
    keystone_bootstrap
    start_schemas
    start_uwsgi keystone "$KEYSTONE_PORT" keystone.wsgi.api:application \
        OS_KEYSTONE_CONFIG_DIR="$ETC/keystone" OS_KEYSTONE_CONFIG_FILES=keystone.conf
    wait_api keystone "${API_URL[keystone]}" 60
    ensure_catalog
    # Again, now that the compute endpoint id for [oslo_limit] is known.
    write_nova_conf
    wait_schemas

    [[ -f $LOG/nova-conductor.log ]] && conductor_offset=$(stat -c %s "$LOG/nova-conductor.log")
    start_uwsgi placement "$PLACEMENT_PORT" placement.wsgi.api:application \
        OS_PLACEMENT_CONFIG_DIR="$ETC/placement"
    start_nova_service conductor
    # The scheduler discovers Placement's versions once at start and exits if
    # it gets no answer it can use (seen when both were restarted together).
    [[ -n ${STARTED[placement]:-} ]] && wait_api placement "${API_URL[placement]}" 120
    start_nova_service scheduler
    # The paste file goes first, or nova looks for its pipeline in nova.conf (gotcha 6).
    start_uwsgi nova-api "$NOVA_PORT" nova.wsgi.osapi_compute:application \
        OS_NOVA_CONFIG_DIR="$ETC/nova" "OS_NOVA_CONFIG_FILES=api-paste.ini;nova.conf"
    svc_start cinder-api "$VENV/bin/uwsgi" "${UWSGI_COMMON[@]}" --processes "$API_PROCESSES" \
        --procname-prefix-spaced yg-os-cinder-api \
        --http-socket "127.0.0.1:$CINDER_PORT" --module cinder.wsgi.api:application \
        --pyargv "--config-file $ETC/cinder/cinder.conf"
    start_uwsgi neutron-api "$NEUTRON_PORT" neutron.wsgi.api:application \
        OS_NEUTRON_CONFIG_DIR="$ETC/neutron" "OS_NEUTRON_CONFIG_FILES=neutron.conf;plugins/ml2/ml2_conf.ini"
    start_uwsgi glance-api "$GLANCE_PORT" glance.wsgi.api:application OS_GLANCE_CONFIG_DIR="$ETC/glance"

    [[ -n ${STARTED[nova-conductor]:-} ]] && wait_conductor "$conductor_offset"
    compute_since=$(($(date +%s) - 30))
    start_nova_service compute
    # A freshly started compute must heartbeat after its start, not before.
    [[ -n ${STARTED[nova-compute]:-} ]] && compute_since=$(date +%s)

    local name
    for name in placement nova-api cinder-api neutron-api glance-api; do
        wait_api "$name" "${API_URL[$name]}" 120
    done
    wait_compute "$compute_since"
    tb_log "up in $((SECONDS - t0)) s (quota driver: $QUOTA_DRIVER); eval \"\$($0 env)\" to use it"
}

cmd_down() {
    local name pids=()
    # OpenStack first, in parallel: each waits seconds for its workers.
    for name in "${OS_SERVICES[@]}"; do
        tb_stop "$name" 15 &
        pids+=("$!")
    done
    wait "${pids[@]}"
    rm -f "$RUN"/*.confhash
    # Then the private infrastructure, if this script started it.
    tb_stop rabbitmq 30
    tb_stop epmd 5
    tb_stop mariadb 60
}

# Prints one line per service; exit 0 only when all are up.
cmd_status() {
    local ok=0 name pid code age
    [[ -f $DATA/infra.env ]] || {
        echo "openstack testbed: never started"
        return 1
    }
    choose_infra
    QUOTA_DRIVER=$(cat "$DATA/quota-driver" 2>/dev/null || echo db)
    if [[ $DB_MODE == private ]] && tb_pid_alive "$RUN/mariadb.pid" && tb_port_open 127.0.0.1 "$DB_PORT"; then
        echo "mariadb         up      pid $(pid_of mariadb) :$DB_PORT"
    elif [[ $DB_MODE == shared ]] && shared_db_works; then
        echo "mariadb         up      shared :$DB_PORT"
    else
        echo "mariadb         down    $DB_MODE :$DB_PORT"
        ok=1
    fi
    if mq_login_works "$MQ_PORT" "$MQ_VHOST"; then
        echo "rabbitmq        up      ${MQ_MODE/private/pid $(pid_of rabbitmq)} :$MQ_PORT vhost ${MQ_VHOST:-/}"
    else
        echo "rabbitmq        down    $MQ_MODE :$MQ_PORT"
        ok=1
    fi
    # Heartbeat age per nova service, from the DB (what the scheduler trusts).
    declare -A beat=()
    while read -r name age; do
        [[ -n $name ]] && beat[$name]=$age
    done < <(db_sql "SELECT \`binary\`, TIMESTAMPDIFF(SECOND, updated_at, UTC_TIMESTAMP()) FROM ${DB_PREFIX}nova.services
        WHERE deleted=0 AND updated_at IS NOT NULL" 2>/dev/null || true)
    for name in "${OS_SERVICES[@]}"; do
        pid=$(pid_of "$name" || true)
        if ! tb_pid_alive "$RUN/$name.pid"; then
            printf '%-15s %-7s\n' "$name" down
            ok=1
        elif [[ -n ${API_URL[$name]:-} ]]; then
            code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' "${API_URL[$name]}" || true)
            if [[ $code =~ ^[1-4][0-9][0-9]$ ]]; then
                printf '%-15s %-7s pid %s %s (HTTP %s)\n' "$name" up "$pid" "${API_URL[$name]}" "$code"
            else
                printf '%-15s %-7s pid %s %s (HTTP %s)\n' "$name" failing "$pid" "${API_URL[$name]}" "$code"
                ok=1
            fi
        else
            age=${beat[$name]:-}
            # service_down_time is 60 s: past that the scheduler ignores it.
            if [[ -n $age ]] && ((age < 60)); then
                printf '%-15s %-7s pid %s heartbeat %ss ago\n' "$name" up "$pid" "$age"
            else
                printf '%-15s %-7s pid %s no recent heartbeat\n' "$name" failing "$pid"
                ok=1
            fi
        fi
    done
    echo "quota driver    $QUOTA_DRIVER"
    if [[ ${1:-} == --deep ]] && ((ok == 0)); then
        OS_CLIENT_CONFIG_FILE=$CLOUDS_YAML "$VENV/bin/python" "$SMOKE" || ok=1
    fi
    return $ok
}

cmd_env() {
    printf 'export OS_CLIENT_CONFIG_FILE=%q\n' "$CLOUDS_YAML"
    printf 'export OS_CLOUD=%q\n' testbed-admin
    printf 'export YUNGUAN_TESTBED_OPENSTACK_PYTHON=%q\n' "$VENV/bin/python"
    printf 'export YUNGUAN_TESTBED_OPENSTACK_QUOTA_DRIVER=%q\n' "$(cat "$DATA/quota-driver" 2>/dev/null || echo db)"
}

# Forget the cloud: stop it, drop its databases (and vhost) where they live,
# delete its state. The venv stays; it is keyed on the constraints.
cmd_reset() {
    cmd_down
    if [[ -f $DATA/infra.env ]]; then
        choose_infra
        local db sql=""
        for db in keystone placement nova_api nova_cell0 nova cinder neutron glance; do
            sql+="DROP DATABASE IF EXISTS $DB_PREFIX$db;"
        done
        if [[ $DB_MODE == shared ]]; then
            db_root "$sql" || tb_log "could not drop the databases on the shared MariaDB"
        fi
        if [[ $MQ_MODE == shared && -n $MQ_VHOST ]]; then
            timeout 60 rabbitmqctl -q delete_vhost "$MQ_VHOST" >/dev/null 2>&1 || true
        fi
    fi
    rm -rf "$ETC" "$DATA" "$TB_HOME/mysql" "$TB_HOME/rabbitmq" "$RUN" "$LOG" "$CLOUDS_YAML"
    tb_init openstack
    tb_log "state removed (venv kept)"
}

main() {
    local cmd=${1:-}
    shift || true
    # Tests may call `up` concurrently: serialise the commands that change
    # state. flock -o keeps the lock's fd out of the daemons we start, or
    # they would hold it forever.
    if [[ $cmd =~ ^(up|down|reset)$ && -z ${YUNGUAN_OPENSTACK_LOCKED:-} ]]; then
        YUNGUAN_OPENSTACK_LOCKED=1 exec flock -o -w 900 "$TB_HOME/.lock" "$HERE/openstack.sh" "$cmd" "$@"
    fi
    case $cmd in
        up) cmd_up "$@" ;;
        down) cmd_down ;;
        status) cmd_status "$@" ;;
        env) cmd_env ;;
        reset) cmd_reset ;;
        *)
            echo "usage: $0 up [--unified-limits|--db-quotas] | down | status [--deep] | env | reset" >&2
            exit 2
            ;;
    esac
}

main "$@"
