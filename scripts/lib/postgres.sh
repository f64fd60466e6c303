# shellcheck shell=bash
#
# scripts/lib/postgres.sh: make a PostgreSQL server reachable for the test suite.
#
# Source this file and call `ensure_postgres`. On success it exports
# FORMULARY_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres).
# It tries, in order:
#   1. a pre-set FORMULARY_TEST_POSTGRES_URL, if it answers;
#   2. a server already listening on $FORMULARY_TEST_POSTGRES_HOST:$FORMULARY_TEST_POSTGRES_PORT
#      (default 127.0.0.1:5432, user postgres, trust auth);
#   3. starting an installed Debian cluster ("main") configured for that port;
#   4. a throwaway cluster (initdb into a temp dir, trust auth, 127.0.0.1 on a free
#      port from 55432 up), stopped and deleted on exit by an EXIT trap.
# If no PostgreSQL binaries exist at all, `postgresql` is installed via apt-get
# (root only).
#
# Knobs (all optional):
#   FORMULARY_TEST_POSTGRES_URL             use this server if it answers
#   FORMULARY_TEST_POSTGRES_HOST/PORT       where to look for a running server
#   FORMULARY_TEST_POSTGRES_THROWAWAY=1     skip steps 2-3, always make a throwaway
#   FORMULARY_TEST_POSTGRES_THROWAWAY_PORT  first port to try for it (default 55432)
#
# Note: the throwaway cluster is cleaned up by `trap ... EXIT` (plus INT/TERM)
# installed in the sourcing shell; callers must not `exec` away from that shell.

_fpg_log() { printf '[postgres] %s\n' "$*" >&2; }

# /usr/lib/postgresql/<version>/bin directories, newest version first.
_fpg_versioned_bindirs() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -d "$dir" ] && printf '%s\n' "$dir"
    done | sort -rV
}

# Print the path of a PostgreSQL program: PATH first, then the newest
# /usr/lib/postgresql/<version>/bin. Returns 1 if not found.
_fpg_bin() {
    local name=$1 dir
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    for dir in $(_fpg_versioned_bindirs); do
        if [ -x "$dir/$name" ]; then
            printf '%s\n' "$dir/$name"
            return 0
        fi
    done
    return 1
}

# Directory holding initdb/pg_ctl/postgres (server binaries), or return 1.
_fpg_server_bindir() {
    local dir initdb
    for dir in $(_fpg_versioned_bindirs); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    if initdb=$(command -v initdb 2>/dev/null); then
        dir=$(dirname "$(readlink -f "$initdb")")
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    fi
    return 1
}

# Does this URL answer a query? (pg_isready first, as it is cheap.)
_fpg_url_ok() {
    local url=$1 psql pg_isready
    psql=$(_fpg_bin psql) || return 1
    if pg_isready=$(_fpg_bin pg_isready); then
        PGCONNECT_TIMEOUT=5 "$pg_isready" -q -d "$url" >/dev/null 2>&1 || return 1
    fi
    PGCONNECT_TIMEOUT=5 "$psql" "$url" -XqtA -v ON_ERROR_STOP=1 -c 'select 1' >/dev/null 2>&1
}

# Wait up to $2 seconds for $1 to answer.
_fpg_wait_url() {
    local url=$1 tries=$2
    while [ "$tries" -gt 0 ]; do
        _fpg_url_ok "$url" && return 0
        sleep 1
        tries=$((tries - 1))
    done
    return 1
}

# Is something listening on 127.0.0.1:$1?
_fpg_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

_fpg_install_postgres() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        _fpg_log "no PostgreSQL binaries found and cannot install them (need root + apt-get)"
        return 1
    fi
    _fpg_log "no PostgreSQL binaries found; installing postgresql via apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 &&
        apt-get install -y -qq --no-install-recommends postgresql postgresql-client >&2
}

# Start an installed-but-stopped Debian cluster "main" configured for port $1.
_fpg_start_cluster() {
    local port=$1 version
    [ -d /etc/postgresql ] || return 1
    command -v pg_lsclusters >/dev/null 2>&1 || return 1
    command -v pg_ctlcluster >/dev/null 2>&1 || return 1
    # pg_lsclusters -h: version cluster port status owner datadir logfile
    version=$(pg_lsclusters -h 2>/dev/null |
        awk -v p="$port" '$2 == "main" && $3 == p && $4 == "down" { print $1; exit }')
    [ -n "$version" ] || return 1
    _fpg_log "starting cluster $version/main (port $port)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2
}

# Run a command as the throwaway cluster's owner (postgres refuses to run as root).
_fpg_as_owner() {
    if [ -z "${_FPG_OWNER:-}" ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u "$_FPG_OWNER" -- "$@"
    else
        su -s /bin/sh "$_FPG_OWNER" -c "$(printf '%q ' "$@")"
    fi
}

_fpg_cleanup() {
    [ -n "${_FPG_TMPDIR:-}" ] || return 0
    local dir=$_FPG_TMPDIR pid
    _FPG_TMPDIR=
    if [ -f "$dir/data/postmaster.pid" ]; then
        _fpg_log "stopping throwaway cluster in $dir"
        if ! (cd "$dir" && _fpg_as_owner "$_FPG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop) >/dev/null 2>&1; then
            pid=$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)
            if [ -n "$pid" ]; then
                kill -QUIT "$pid" 2>/dev/null || true
                sleep 1
            fi
        fi
    fi
    rm -rf "$dir"
}

_fpg_throwaway() {
    local bindir port owner="" dir url
    bindir=$(_fpg_server_bindir) || {
        _fpg_install_postgres || return 1
        bindir=$(_fpg_server_bindir) || { _fpg_log "initdb not found even after install"; return 1; }
    }

    if [ "$(id -u)" -eq 0 ]; then
        owner=postgres
        if ! id -u "$owner" >/dev/null 2>&1; then
            owner=formulary-pg
            if ! id -u "$owner" >/dev/null 2>&1; then
                _fpg_log "creating system user $owner to own the throwaway cluster"
                useradd --system --no-create-home --shell /usr/sbin/nologin "$owner" >&2 || return 1
            fi
        fi
    fi

    port=${FORMULARY_TEST_POSTGRES_THROWAWAY_PORT:-55432}
    while _fpg_port_in_use "$port"; do
        port=$((port + 1))
        if [ "$port" -gt $((${FORMULARY_TEST_POSTGRES_THROWAWAY_PORT:-55432} + 100)) ]; then
            _fpg_log "no free port found for the throwaway cluster"
            return 1
        fi
    done

    # Short path under /tmp: the unix socket path must stay under ~100 bytes.
    dir=$(mktemp -d /tmp/formulary-pg.XXXXXX) || return 1
    _FPG_TMPDIR=$dir
    _FPG_BINDIR=$bindir
    _FPG_OWNER=$owner
    trap '_fpg_cleanup' EXIT
    trap '_fpg_cleanup; trap - INT; kill -INT $$' INT
    trap '_fpg_cleanup; trap - TERM; kill -TERM $$' TERM
    [ -z "$owner" ] || chown "$owner" "$dir"

    _fpg_log "creating throwaway cluster ($bindir) in $dir on port $port"
    if ! (cd "$dir" && _fpg_as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust \
        -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1); then
        cat "$dir/initdb.log" >&2
        _fpg_log "initdb failed"
        return 1
    fi
    if ! (cd "$dir" && _fpg_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null 2>&1); then
        cat "$dir/server.log" >&2 2>/dev/null || true
        _fpg_log "throwaway cluster failed to start"
        return 1
    fi

    url="postgres://postgres@127.0.0.1:$port/postgres"
    _fpg_wait_url "$url" 30 || { _fpg_log "throwaway cluster does not answer"; return 1; }
    # Mirror the usual CI server: a `test` database and a `root` role.
    "$(_fpg_bin psql)" "$url" -Xq -c 'create database test' >/dev/null 2>&1 || true
    "$(_fpg_bin psql)" "$url" -Xq -c 'create role root superuser login' >/dev/null 2>&1 || true
    FORMULARY_TEST_POSTGRES_URL=$url
}

ensure_postgres() {
    local host=${FORMULARY_TEST_POSTGRES_HOST:-127.0.0.1}
    local port=${FORMULARY_TEST_POSTGRES_PORT:-5432}
    local url

    if [ -n "${FORMULARY_TEST_POSTGRES_URL:-}" ]; then
        if _fpg_url_ok "$FORMULARY_TEST_POSTGRES_URL"; then
            _fpg_log "using pre-set FORMULARY_TEST_POSTGRES_URL"
            export FORMULARY_TEST_POSTGRES_URL
            return 0
        fi
        _fpg_log "pre-set FORMULARY_TEST_POSTGRES_URL does not answer; looking elsewhere"
    fi

    if ! _fpg_bin psql >/dev/null && ! _fpg_server_bindir >/dev/null; then
        _fpg_install_postgres || return 1
    fi

    if [ "${FORMULARY_TEST_POSTGRES_THROWAWAY:-0}" != 1 ]; then
        url="postgres://postgres@$host:$port/postgres"
        if _fpg_url_ok "$url"; then
            _fpg_log "server answers on $host:$port"
            export FORMULARY_TEST_POSTGRES_URL=$url
            return 0
        fi
        if _fpg_start_cluster "$port" && _fpg_wait_url "$url" 30; then
            _fpg_log "server answers on $host:$port"
            export FORMULARY_TEST_POSTGRES_URL=$url
            return 0
        fi
        _fpg_log "no usable server on $host:$port"
    fi

    _fpg_throwaway || { _fpg_cleanup; return 1; }
    export FORMULARY_TEST_POSTGRES_URL
}
