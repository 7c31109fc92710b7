#!/usr/bin/env bash
# A real PostgreSQL server on 127.0.0.1, from Debian's `postgresql` package, without Docker:
# the binaries of /usr/lib/postgresql/<version>/bin (installed with apt-get when missing, as
# root), a cluster made by initdb in a run dir of ours, owned by the `postgres` system user
# (initdb and the server refuse to run as root).
#
# Usage (from any directory):
#   bash scripts/postgres.sh start     start a clean server; the last stdout line is its admin URL,
#                                      so that ADMIN_URL=$(bash scripts/postgres.sh start) works;
#                                      already running: just the URL
#   bash scripts/postgres.sh restart   start the server again on the data it had (nothing wiped);
#                                      prints the URL like start
#   bash scripts/postgres.sh stop      a fast shutdown (pg_ctl -m fast); exit 0 if not running
#   bash scripts/postgres.sh kill      SIGKILL the server at once (for fault tests; `restart`
#                                      brings it back on its data, after crash recovery)
#   bash scripts/postgres.sh status    "running pid=N url=..." and exit 0 when it answers;
#                                      otherwise exit 3
#
# Every `start` is a clean server: the run dir (the cluster in <run>/data, the socket, the log)
# is WIPED and initdb'ed again. Only `restart` keeps the data.
#
# Environment:
#   POSTGRES_RUN            run dir (default <repo>/postgres-run); `start` wipes it, so it must be
#                           empty, missing, or a run dir of this script
#   POSTGRES_PORT           port on 127.0.0.1 (default 15432; `restart` keeps the last start's)
#   POSTGRES_START_TIMEOUT  seconds `start` waits for the server to answer (default 60)
#
# The admin URL names the superuser `admin` with a random password kept in <run>/password (mode
# 600). Messages go to stderr; stdout carries only the URL (start, restart) and the status line.
set -euo pipefail

readonly ME="postgres.sh"
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_DIR
readonly ADMIN=admin
PORT_WAS_SET=${POSTGRES_PORT+yes}
PORT=${POSTGRES_PORT:-15432}
START_TIMEOUT=${POSTGRES_START_TIMEOUT:-60}
RUN=$(realpath -m -- "${POSTGRES_RUN:-$REPO_DIR/postgres-run}")
readonly RUN
readonly DATA="$RUN/data" SOCKET_DIR="$RUN/socket" LOG="$RUN/server.log"
readonly MARKER="$RUN/.returns-postgres" PORT_FILE="$RUN/port" PASSWORD_FILE="$RUN/password"

log() { printf '%s: %s\n' "$ME" "$*" >&2; }

# die MESSAGE [HINT]
die() {
  printf '%s: error: %s\n' "$ME" "$1" >&2
  if [[ $# -gt 1 ]]; then printf '%s: hint: %s\n' "$ME" "$2" >&2; fi
  exit 1
}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; }

[[ $PORT =~ ^[0-9]{1,5}$ ]] && ((10#$PORT > 0 && 10#$PORT < 65536)) ||
  die "POSTGRES_PORT='$PORT' is not a port number (1-65535)"
[[ $START_TIMEOUT =~ ^[0-9]{1,6}$ ]] || die "POSTGRES_START_TIMEOUT='$START_TIMEOUT' is not a number of seconds"

# The newest installed server's bin dir, installing Debian's package when none is.
find_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -z $dir || ! -x $dir/initdb ]]; then
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
      die "PostgreSQL's server binaries are not installed (no /usr/lib/postgresql/*/bin/initdb)" \
        "sudo apt-get install postgresql"
    fi
    log "installing Debian's postgresql package (once)"
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; } >&2 ||
      die "apt-get could not install postgresql; see its output above"
    dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  printf '%s\n' "$dir"
}

# as_owner CMD... : run CMD as the `postgres` system user when we are root, else as ourselves.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "there is no postgres system user to run the server as" \
      "apt-get install postgresql makes it"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

url() {
  printf 'postgres://%s:%s@127.0.0.1:%s/postgres\n' "$ADMIN" "$(<"$PASSWORD_FILE")" "$(<"$PORT_FILE")"
}

running() {
  [[ -f $PORT_FILE ]] && "$BIN/pg_isready" -q -h 127.0.0.1 -p "$(<"$PORT_FILE")" -t 2 >/dev/null 2>&1
}

pid() { head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true; }

launch() {
  local port
  port=$(<"$PORT_FILE")
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$START_TIMEOUT" start \
    -o "-p $port -k $SOCKET_DIR -c listen_addresses=127.0.0.1" >&2 ||
    die "the server did not start on 127.0.0.1:$port within $START_TIMEOUT s" \
      "read $LOG (is the port taken? set POSTGRES_PORT)"
  log "ready at 127.0.0.1:$port (pid $(pid)), log $LOG"
}

cmd_start() {
  if running; then
    url
    return 0
  fi
  if [[ -e $RUN && ! -e $MARKER ]] && [[ -n $(ls -A -- "$RUN" 2>/dev/null) ]]; then
    die "$RUN is not empty and not a run dir of $ME: not wiping it" "set POSTGRES_RUN to an empty or new directory"
  fi
  if [[ -f $DATA/postmaster.pid ]]; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf -- "$RUN"
  mkdir -p -- "$DATA" "$SOCKET_DIR"
  touch "$MARKER"
  printf '%s\n' "$((10#$PORT))" >"$PORT_FILE"
  (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' 'xy' >"$PASSWORD_FILE")
  local pwfile="$RUN/.pwfile"
  cp "$PASSWORD_FILE" "$pwfile"
  if [[ $(id -u) -eq 0 ]]; then chown -R postgres: "$RUN"; fi
  log "initdb into $DATA (superuser $ADMIN)"
  as_owner "$BIN/initdb" -D "$DATA" -U "$ADMIN" --pwfile="$pwfile" -A scram-sha-256 \
    --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$RUN/initdb.log" 2>&1 ||
    die "initdb failed" "read $RUN/initdb.log"
  rm -f -- "$pwfile"
  launch
  url
}

cmd_restart() {
  [[ -f $MARKER && -d $DATA ]] || die "no cluster in $RUN to restart" "bash scripts/postgres.sh start makes one"
  if running; then
    url
    return 0
  fi
  if [[ -n $PORT_WAS_SET ]]; then printf '%s\n' "$((10#$PORT))" >"$PORT_FILE"; fi
  launch
  url
}

cmd_stop() {
  if [[ ! -f $DATA/postmaster.pid ]]; then
    log "not running"
    return 0
  fi
  as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || die "pg_ctl stop failed" "read $LOG"
}

cmd_kill() {
  local p
  p=$(pid)
  [[ -n $p ]] || die "not running (no $DATA/postmaster.pid)"
  kill -9 "$p"
  # Gone before we return: a restart right after must not find it alive (its lock file stays,
  # as a crash leaves it; the restart's crash recovery deals with that).
  local waited=0
  while kill -0 "$p" 2>/dev/null && ((waited < 100)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  log "killed pid $p (SIGKILL); \`$ME restart\` recovers it"
}

cmd_status() {
  if running; then
    printf 'running pid=%s url=postgres://%s:***@127.0.0.1:%s/postgres\n' "$(pid)" "$ADMIN" "$(<"$PORT_FILE")"
    return 0
  fi
  printf 'not running\n'
  exit 3
}

case ${1:-} in
  start | restart | stop | kill | status)
    BIN=$(find_bin)
    readonly BIN
    "cmd_$1"
    ;;
  -h | --help | help) usage ;;
  *)
    usage
    exit 2
    ;;
esac
