#!/usr/bin/env bash
# A real single-node Apache Kafka 4.x broker (KRaft, one process that is both broker
# and controller) on 127.0.0.1, without Docker: the jars come from Maven Central
# through Maven (scripts/kafka/pom.xml) and run on the local `java` (17 or newer).
#
# Usage (from any directory):
#   bash scripts/kafka.sh start                  start a clean broker; last stdout line is
#                                                its bootstrap address, so that
#                                                  BOOTSTRAP=$(bash scripts/kafka.sh start)
#                                                works; already running: just the address
#   bash scripts/kafka.sh restart                start the broker again on the data it had when
#                                                it was stopped or killed (nothing is wiped; same
#                                                ports and cluster id); prints the address like
#                                                start; already running: just the address
#   bash scripts/kafka.sh stop                   SIGTERM, up to KAFKA_STOP_TIMEOUT s for a clean
#                                                exit, then SIGKILL; exit 0 if not running
#   bash scripts/kafka.sh kill                   SIGKILL at once (for fault tests; `restart`
#                                                brings it back on its data)
#   bash scripts/kafka.sh status                 "running pid=N bootstrap=127.0.0.1:PORT" and exit 0
#                                                when it answers; otherwise exit 3
#   bash scripts/kafka.sh console-producer TOPIC [ARGS...]
#                                                Kafka's own console producer: one record a stdin line
#                                                (ARGS go to it, e.g. --property parse.key=true)
#   bash scripts/kafka.sh console-consumer TOPIC [ARGS...]
#                                                Kafka's own console consumer (e.g. --from-beginning
#                                                --max-messages 1)
#   bash scripts/kafka.sh topics [ARGS...]       Kafka's topics tool; without ARGS: --list
#                                                (e.g. topics --create --topic t --partitions 3)
#   bash scripts/kafka.sh fetch                  only fetch the jars
#
# Every `start` is a clean broker: the run dir (the data dir <run>/data with the KRaft
# metadata and all topics, and the broker log) is WIPED, and the data dir is formatted
# again with a new random cluster id. No topic or record survives a stop and start; only
# the jars are kept. (A broker that is already running is left alone by `start`.) Only
# `restart` keeps the data: after `kill` it is an unclean restart, and the broker recovers
# its logs from what the killed process had written.
#
# A second, independent broker (a fault test's own) needs only its own run dir and ports;
# it shares the jars:
#   KAFKA_RUN=/tmp/b2/run KAFKA_PORT=29092 bash scripts/kafka.sh start   (then kill, restart,
#   stop with the same KAFKA_RUN). Each run dir has its own lock, pid file and address.
#
# Linux only (setsid, flock, GNU sed and coreutils timeout, /dev/tcp of bash).
#
# Environment:
#   KAFKA_PORT             client listener port (default 19092; `restart` keeps the port of
#                          the run dir's last start)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener port (default KAFKA_PORT+1)
#   KAFKA_CACHE            cache dir (default <repo>/kafka-cache): libs/ holds the jars
#                          (fetched once; again when pom.xml changes)
#   KAFKA_RUN              run dir of this broker (default <cache>/run): server.properties,
#                          data/, broker.log (broker.log.1: the previous run's, after a
#                          restart), broker.out, broker.pid; `start` wipes it, so it must
#                          be empty, missing, or a run dir of this script
#   KAFKA_START_TIMEOUT    seconds `start` waits for the broker to answer (default 60)
#   KAFKA_STOP_TIMEOUT     seconds `stop` waits after SIGTERM before SIGKILL (default 30)
#   KAFKA_HEAP_OPTS        broker heap (default "-Xms512m -Xmx1g")
#   KAFKA_JVM_OPTS         more broker JVM options (default none)
#   KAFKA_BOOTSTRAP        for console-producer, console-consumer and topics: the cluster to
#                          talk to (default: the running broker of this run dir)
#
# Only the cache dir and the run dir are written (and Maven's own local repository, ~/.m2 by
# default). Messages go to stderr; stdout carries only the bootstrap address (start,
# restart), the status line (status) and the tools' own output.
set -euo pipefail

readonly ME="kafka.sh"
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
REPO_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
readonly REPO_DIR
readonly CONF_DIR="$SCRIPT_DIR/kafka"
readonly POM="$CONF_DIR/pom.xml"
readonly BROKER_LOG4J="$CONF_DIR/log4j2-broker.xml"
readonly TOOLS_LOG4J="$CONF_DIR/log4j2-tools.xml"

readonly DEFAULT_PORT=19092
PORT_WAS_SET=${KAFKA_PORT+yes}
PORT=${KAFKA_PORT:-$DEFAULT_PORT}
CONTROLLER_PORT_WAS_SET=${KAFKA_CONTROLLER_PORT:+yes}
CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}

log() { printf '%s: %s\n' "$ME" "$*" >&2; }

# die MESSAGE [HINT]
die() {
  printf '%s: error: %s\n' "$ME" "$1" >&2
  if [[ $# -gt 1 ]]; then printf '%s: hint: %s\n' "$ME" "$2" >&2; fi
  exit 1
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# Milliseconds on some clock (bash 5's EPOCHREALTIME; whole seconds on older bash).
now_ms() {
  if [[ -n ${EPOCHREALTIME:-} ]]; then
    local us=${EPOCHREALTIME//[!0-9]/}
    printf '%s\n' "$((10#$us / 1000))"
  else
    printf '%s\n' "$((SECONDS * 1000))"
  fi
}

# since_s START_MS : seconds since START_MS, one decimal.
since_s() {
  local ms=$(($(now_ms) - $1))
  printf '%d.%d\n' "$((ms / 1000))" "$((ms % 1000 / 100))"
}

# is_port N : N is a TCP port number.
is_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && ((10#$1 > 0 && 10#$1 < 65536)); }

check_settings() {
  if ! is_port "$PORT"; then die "KAFKA_PORT='$PORT' is not a port number (1-65535)"; fi
  PORT=$((10#$PORT))
  if [[ -z $CONTROLLER_PORT ]]; then
    CONTROLLER_PORT=$((PORT + 1))
    if ! is_port "$CONTROLLER_PORT"; then
      die "the controller port KAFKA_PORT+1 = $CONTROLLER_PORT is not a port number" "set KAFKA_CONTROLLER_PORT too"
    fi
  fi
  if ! is_port "$CONTROLLER_PORT"; then
    die "KAFKA_CONTROLLER_PORT='$CONTROLLER_PORT' is not a port number (1-65535)"
  fi
  CONTROLLER_PORT=$((10#$CONTROLLER_PORT))
  if ((CONTROLLER_PORT == PORT)); then
    die "KAFKA_PORT and KAFKA_CONTROLLER_PORT are both $PORT" "leave KAFKA_CONTROLLER_PORT unset (it defaults to KAFKA_PORT+1)"
  fi
  if ! [[ $START_TIMEOUT =~ ^[0-9]{1,6}$ ]]; then die "KAFKA_START_TIMEOUT='$START_TIMEOUT' is not a number of seconds"; fi
  if ! [[ $STOP_TIMEOUT =~ ^[0-9]{1,6}$ ]]; then die "KAFKA_STOP_TIMEOUT='$STOP_TIMEOUT' is not a number of seconds"; fi
  START_TIMEOUT=$((10#$START_TIMEOUT))
  STOP_TIMEOUT=$((10#$STOP_TIMEOUT))
}

# The cache dir, made absolute (a relative KAFKA_CACHE is taken from the current directory).
CACHE_ARG=${KAFKA_CACHE:-$REPO_DIR/kafka-cache}
mkdir -p -- "$CACHE_ARG" || die "cannot create the cache dir $CACHE_ARG" "set KAFKA_CACHE to a writable directory"
CACHE=$(cd -- "$CACHE_ARG" && pwd)
readonly CACHE
readonly LIBS="$CACHE/libs"
readonly LIBS_MARKER="$LIBS/.complete"
# The run dir, made absolute (a relative KAFKA_RUN is taken from the current directory); it
# need not exist yet: start and restart create it.
if [[ -n ${KAFKA_RUN:-} ]]; then
  RUN=$(realpath -m -- "$KAFKA_RUN") || die "KAFKA_RUN='$KAFKA_RUN' is not a usable path"
else
  RUN="$CACHE/run"
fi
readonly RUN
readonly DATA="$RUN/data"
readonly PROPS="$RUN/server.properties"
readonly PID_FILE="$RUN/broker.pid"
readonly ADDR_FILE="$RUN/bootstrap"
readonly BROKER_LOG="$RUN/broker.log"
readonly BROKER_OUT="$RUN/broker.out"

readonly BROKER_MAIN="kafka.Kafka"
readonly STORAGE_TOOL="kafka.tools.StorageTool"
readonly TOPIC_TOOL="org.apache.kafka.tools.TopicCommand"
readonly PRODUCER_TOOL="org.apache.kafka.tools.ConsoleProducer"
readonly CONSUMER_TOOL="org.apache.kafka.tools.consumer.ConsoleConsumer"

# --- tools of this machine ---------------------------------------------------------------

need_java() {
  command -v java >/dev/null 2>&1 ||
    die "java not found on PATH; Kafka 4.x needs Java 17 or newer" \
      "on Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless"
  local line major
  line=$(java -version 2>&1 | head -n 1) || true
  if [[ $line =~ version\ \"([0-9]+)(\.([0-9]+))? ]]; then
    major=${BASH_REMATCH[1]}
    if [[ $major == 1 ]]; then major=${BASH_REMATCH[3]:-0}; fi
    ((major >= 17)) ||
      die "java on PATH is version $major ($line); Kafka 4.x needs Java 17 or newer" \
        "install openjdk-17-jre-headless (or newer) or put a Java 17+ first on PATH"
  fi
}

# Fetch the jars of pom.xml into $LIBS unless the marker there holds the pom's checksum.
ensure_libs() {
  local sum
  sum=$(sha256sum "$POM" | cut -d' ' -f1)
  if [[ -f $LIBS_MARKER && $(<"$LIBS_MARKER") == "$sum" ]]; then return 0; fi
  # One fetch at a time per cache: brokers of two run dirs may start at once. The broker
  # must not inherit fd 8 (see launch_broker).
  if command -v flock >/dev/null 2>&1; then
    exec 8>"$CACHE/.lock"
    flock -w 600 8 || die "another $ME has been fetching into $LIBS for 10 minutes"
    if [[ -f $LIBS_MARKER && $(<"$LIBS_MARKER") == "$sum" ]]; then
      exec 8>&-
      return 0
    fi
  fi
  command -v mvn >/dev/null 2>&1 ||
    die "mvn (Maven) not found on PATH; it fetches the Kafka jars once into $LIBS" \
      "on Debian/Ubuntu: apt-get install -y maven"
  local tmp="$LIBS.partial" started
  started=$(now_ms)
  rm -rf -- "$tmp"
  log "fetching the Kafka jars of $POM with Maven into $LIBS (once; about 45 MB)..."
  # (sed: Debian's Maven 3.8.7 prints colour codes even in batch mode)
  if ! mvn -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g' >&2; then
    rm -rf -- "$tmp"
    die "Maven could not fetch the Kafka jars (its output is above)" \
      "check that Maven Central is reachable (mvn -B dependency:get -Dartifact=org.apache.kafka:kafka-clients:4.4.0)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "Maven ran but $tmp has no kafka_2.13 jar"
  rm -rf -- "$LIBS"
  mv -- "$tmp" "$LIBS"
  printf '%s\n' "$sum" >"$LIBS_MARKER"
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $(since_s "$started") s"
  exec 8>&-
}

# JVM options of the short-lived tools. Without a log4j shutdown hook: otherwise a client
# thread that logs during JVM exit prints "Unable to register Log4j shutdown hook".
readonly TOOL_JVM=(-XX:+UseSerialGC -Djava.awt.headless=true -Dlog4j2.shutdownHookEnabled=false
  -Dlog4j2.configurationFile="$TOOLS_LOG4J")

# run_tool MAIN_CLASS ARGS... : a Kafka command-line tool, logging warnings to stderr.
run_tool() {
  local main=$1
  shift
  java -Xmx256m "${TOOL_JVM[@]}" -cp "$LIBS/*" "$main" "$@"
}

# --- the broker process -------------------------------------------------------------------

# Prints the pid of this run dir's broker and succeeds if it is running.
broker_pid() {
  [[ -f $PID_FILE ]] || return 1
  local pid args
  pid=$(<"$PID_FILE")
  is_uint "$pid" || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a reused pid: it must be java running kafka.Kafka on our properties.
  if [[ -r /proc/$pid/cmdline ]]; then
    args=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  else
    args=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
  fi
  [[ $args == *" $BROKER_MAIN $PROPS"* ]] || return 1
  printf '%s\n' "$pid"
}

# port_open PORT : something accepts connections on 127.0.0.1:PORT.
port_open() {
  # shellcheck disable=SC2016 # $1 is the inner shell's
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# answers BOOTSTRAP : the broker there answers a Kafka ApiVersions request (v0, correlation
# id 7, client id "kafka.sh") with its own correlation id and error code 0 (NONE). Pure bash:
# a tool JVM would take 1.5 s per probe. (The broker opens its client port only once it is
# unfenced and serving, so this is a real "ready".)
answers() {
  local port=${1##*:} reply
  # shellcheck disable=SC2016 # $1 is the inner shell's
  reply=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "\x00\x00\x00\x12\x00\x12\x00\x00\x00\x00\x00\x07\x00\x08kafka.sh" >&3
    head -c 10 <&3 | od -An -tx1' _ "$port" 2>/dev/null) || return 1
  reply=${reply//[$' \n']/}
  # 4 bytes size, 4 bytes correlation id, 2 bytes error code
  [[ $reply =~ ^0000[0-9a-f]{4}000000070000$ ]]
}

# A new cluster id: 16 random bytes in URL-safe base64 without padding, as Kafka's Uuid
# (which also never starts one with '-'). `kafka-storage random-uuid` would cost a JVM start.
new_cluster_id() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    if [[ $id =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{21}$ ]]; then break; fi
  done
  printf '%s\n' "$id"
}

# The address of the running broker of this run dir (from its start), else the configured one.
bootstrap_addr() {
  if [[ -f $ADDR_FILE ]] && broker_pid >/dev/null; then
    cat -- "$ADDR_FILE"
  else
    printf '127.0.0.1:%s\n' "$PORT"
  fi
}

show_log_tail() {
  local f
  for f in "$BROKER_LOG" "$BROKER_OUT"; do
    if [[ -s $f ]]; then
      printf '%s: ---- last 40 lines of %s ----\n' "$ME" "$f" >&2
      tail -n 40 -- "$f" >&2
      printf '%s: ---- end of %s ----\n' "$ME" "$f" >&2
    fi
  done
}

# Serialise start/restart/stop/kill of this run dir (two run dirs are independent). The
# broker must not inherit fd 9 (see launch_broker).
take_lock() {
  mkdir -p -- "$RUN" || die "cannot create the run dir $RUN" "set KAFKA_RUN to a writable directory"
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$RUN/.lock"
  flock -w 300 9 || die "another $ME start/stop on $RUN has held its lock for 5 minutes"
}

# signal_and_wait PID SIGNAL SECONDS : send SIGNAL, then wait up to SECONDS for PID to exit.
signal_and_wait() {
  local pid=$1 sig=$2 secs=$3 tenths=0
  kill "-$sig" "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    ((tenths < secs * 10)) || return 1
    sleep 0.1
    tenths=$((tenths + 1))
  done
}

write_properties() {
  cat >"$PROPS" <<EOF
# Written by scripts/kafka.sh on each start (restart reuses it); edits here are lost at the
# next start. Single node, KRaft, one process that is both broker and controller, on
# 127.0.0.1 only.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER

log.dirs=$DATA

# One node: every replication factor and ISR minimum is 1.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Internal topics with few partitions: quicker to create on a small machine.
offsets.topic.num.partitions=3
transaction.state.log.num.partitions=3
share.coordinator.state.topic.num.partitions=3

num.partitions=3
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
# A restart after a kill waits until the controller drops the killed incarnation's session
# (DUPLICATE_BROKER_REGISTRATION until then): 4 s instead of 9 s, with heartbeats every
# 0.5 s instead of 2 s so that a live broker still has eight chances.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=500
# An event log keeps its records: no time or size retention (the data dir is wiped on
# each start anyway; restart keeps it).
log.retention.ms=-1
log.retention.bytes=-1

# Durability: no log.flush.interval.messages, so the OS, not Kafka, decides when to fsync.
# A record acknowledged with acks=all is in the page cache of this machine, so it survives
# a SIGKILL of the broker (kill, then restart): the kernel, not the process, owns those
# pages, and the restart recovers the logs past the last clean checkpoint from them. Only a
# crash of the machine could lose acknowledged records, and on one node flushing each
# message would be the only guard against that; these brokers are for tests and demos.
EOF
}

# --- starting ----------------------------------------------------------------------------

# If the broker of this run dir runs, print its address and succeed; fail if it does not
# run. Dies if it runs but does not answer, or (KAFKA_PORT given) answers elsewhere.
report_running() {
  local pid running bootstrap="127.0.0.1:$PORT"
  pid=$(broker_pid) || return 1
  running=$(bootstrap_addr)
  if [[ -n $PORT_WAS_SET && $running != "$bootstrap" ]]; then
    die "the broker of $RUN is already running at $running (pid $pid), not at $bootstrap" \
      "bash scripts/kafka.sh stop first, or use another KAFKA_RUN for a second broker"
  fi
  if answers "$running"; then
    log "already running (pid $pid) at $running"
    printf '%s\n' "$running"
    return 0
  fi
  show_log_tail
  die "the broker of $RUN is running (pid $pid) but does not answer at $running" \
    "bash scripts/kafka.sh stop && bash scripts/kafka.sh start"
}

ports_free() {
  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port $p on 127.0.0.1 is taken by another process (not the broker of $RUN)" \
        "see who holds it with: ss -ltnp 'sport = :$p'; or pick free ports with KAFKA_PORT=... (controller: KAFKA_CONTROLLER_PORT, default KAFKA_PORT+1)"
    fi
  done
}

# Empty the run dir for a clean start, keeping its lock. A KAFKA_RUN dir that holds anything
# this script does not write is refused, not wiped: a mistyped KAFKA_RUN must not cost files.
wipe_run_dir() {
  local entry name
  local -a entries
  shopt -s nullglob dotglob
  entries=("$RUN"/*)
  shopt -u nullglob dotglob
  if [[ -n ${KAFKA_RUN:-} ]]; then
    for entry in "${entries[@]}"; do
      name=${entry##*/}
      case $name in
        .lock | data | server.properties | format.log | broker.log | broker.log.1 | broker.out | broker.pid | bootstrap) ;;
        *)
          die "KAFKA_RUN=$RUN holds '$name', which $ME did not write; it is not wiped" \
            "point KAFKA_RUN at an empty or missing directory (start creates it)"
          ;;
      esac
    done
  fi
  for entry in "${entries[@]}"; do
    if [[ ${entry##*/} != .lock ]]; then rm -rf -- "$entry"; fi
  done
}

# launch_broker STARTED_MS : start java on $PROPS and wait until it answers at
# 127.0.0.1:$PORT; prints that address.
launch_broker() {
  local started=$1 pid bootstrap="127.0.0.1:$PORT"
  local -a heap jvm
  read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
  read -r -a jvm <<<"${KAFKA_JVM_OPTS:-}"
  : >"$BROKER_LOG"
  log "starting the broker on 127.0.0.1:$PORT (controller 127.0.0.1:$CONTROLLER_PORT), log $BROKER_LOG"
  # setsid: its own session, so that no terminal hang-up or Ctrl-C of the caller's job
  # reaches it. The inner shell writes its own pid (java keeps it through exec), whether or
  # not setsid forks. stdin, stdout, stderr and the lock fds are not the caller's, so that
  # BOOTSTRAP=$(... start) returns.
  # shellcheck disable=SC2016 # $$, $0 and $@ are the inner shell's
  local launcher=(bash -c 'echo "$$" >"$0"; exec "$@"' "$PID_FILE")
  if command -v setsid >/dev/null 2>&1; then launcher=(setsid "${launcher[@]}"); fi
  (
    cd -- "$RUN"
    exec "${launcher[@]}" java "${heap[@]}" \
      -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
      "${jvm[@]}" \
      -Dlog4j2.configurationFile="$BROKER_LOG4J" -Dkafka.broker.log="$BROKER_LOG" \
      -Dkafka.logs.dir="$RUN" \
      -cp "$LIBS/*" "$BROKER_MAIN" "$PROPS"
  ) </dev/null >>"$BROKER_OUT" 2>&1 8>&- 9>&- &

  local launcher_pid=$! deadline=$((SECONDS + START_TIMEOUT)) grace=0 left
  # Wait for the pid file (written by the launcher just before it becomes java).
  until pid=$(broker_pid); do
    if ! kill -0 "$launcher_pid" 2>/dev/null || ((SECONDS >= deadline)); then
      # Allow a forking setsid a moment to write the pid file.
      if ((grace++ >= 20)); then
        show_log_tail
        die "the broker did not start (see the log above)" "full output: $BROKER_OUT"
      fi
    fi
    sleep 0.1
  done
  printf '%s\n' "$bootstrap" >"$ADDR_FILE"
  log "broker pid $pid; waiting up to ${START_TIMEOUT} s for it to answer at $bootstrap"
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log_tail
      die "the broker (pid $pid) exited while starting (see the log above)" \
        "a port in use or a bad setting is the usual cause; full log: $BROKER_LOG"
    fi
    left=$((deadline - SECONDS))
    if ((left <= 0)); then
      show_log_tail
      signal_and_wait "$pid" TERM 10 || signal_and_wait "$pid" KILL 10 || true
      rm -f -- "$PID_FILE" "$ADDR_FILE"
      die "the broker did not answer at $bootstrap within ${START_TIMEOUT} s; stopped it (log above)" \
        "full log: $BROKER_LOG; a slow machine may need KAFKA_START_TIMEOUT=120"
    fi
    # Answers, and the log of this run says that startup is complete.
    if answers "$bootstrap" && grep -qF '] Kafka Server started' "$BROKER_LOG"; then break; fi
    sleep 0.2
  done
  log "ready at $bootstrap in $(since_s "$started") s (pid $pid)"
  printf '%s\n' "$bootstrap"
}

# --- commands -----------------------------------------------------------------------------

cmd_start() {
  need_java
  take_lock
  if report_running; then return 0; fi
  ports_free
  ensure_libs
  local started
  started=$(now_ms)

  # A clean broker every time: no data, metadata or log of a previous run.
  wipe_run_dir
  mkdir -p -- "$DATA"
  write_properties

  local cluster_id
  cluster_id=$(new_cluster_id)
  log "formatting $DATA (KRaft, standalone controller, cluster id $cluster_id)"
  if ! run_tool "$STORAGE_TOOL" format --standalone --cluster-id "$cluster_id" \
    --config "$PROPS" >"$RUN/format.log" 2>&1; then
    cat -- "$RUN/format.log" >&2
    die "formatting the KRaft storage in $DATA failed (output above)"
  fi
  launch_broker "$started"
}

# The same broker again on its data: the properties of its last start (its ports, which the
# KRaft metadata names) and its cluster id; the previous run's log is kept as broker.log.1.
cmd_restart() {
  need_java
  take_lock
  if [[ ! -f $PROPS || ! -f $DATA/meta.properties ]]; then
    die "$RUN holds no formatted broker data to restart" "start a clean broker: bash scripts/kafka.sh start"
  fi
  local line
  line=$(grep -m 1 '^listeners=' "$PROPS") || die "$PROPS names no listeners" "bash scripts/kafka.sh start"
  if ! [[ $line =~ ^listeners=PLAINTEXT://127\.0\.0\.1:([0-9]+),CONTROLLER://127\.0\.0\.1:([0-9]+)$ ]]; then
    die "$PROPS has listeners this script did not write: $line" "bash scripts/kafka.sh start"
  fi
  local port=${BASH_REMATCH[1]} controller=${BASH_REMATCH[2]}
  if [[ -n $PORT_WAS_SET && $PORT != "$port" ]] ||
    [[ -n $CONTROLLER_PORT_WAS_SET && $CONTROLLER_PORT != "$controller" ]]; then
    die "the broker data in $RUN belongs to ports $port (controller $controller), not $PORT ($CONTROLLER_PORT)" \
      "restart keeps the ports of its last start: leave KAFKA_PORT and KAFKA_CONTROLLER_PORT unset"
  fi
  PORT=$port
  CONTROLLER_PORT=$controller
  if report_running; then return 0; fi
  ports_free
  ensure_libs
  local started
  started=$(now_ms)
  if [[ -f $BROKER_LOG ]]; then mv -f -- "$BROKER_LOG" "$BROKER_LOG.1"; fi
  log "restarting on the data in $DATA ($(grep -m 1 '^cluster.id=' "$DATA/meta.properties" || echo 'no cluster id'))"
  launch_broker "$started"
}

cmd_stop() {
  take_lock
  local pid
  if ! pid=$(broker_pid); then
    log "not running"
    rm -f -- "$PID_FILE" "$ADDR_FILE"
    return 0
  fi
  log "stopping the broker (pid $pid): SIGTERM, up to ${STOP_TIMEOUT} s for a clean shutdown"
  local started
  started=$(now_ms)
  if signal_and_wait "$pid" TERM "$STOP_TIMEOUT"; then
    log "stopped in $(since_s "$started") s"
  else
    log "still running after ${STOP_TIMEOUT} s: SIGKILL"
    signal_and_wait "$pid" KILL 10 || die "pid $pid survived SIGKILL"
  fi
  rm -f -- "$PID_FILE" "$ADDR_FILE"
}

cmd_kill() {
  take_lock
  local pid
  if ! pid=$(broker_pid); then
    log "not running"
    rm -f -- "$PID_FILE" "$ADDR_FILE"
    return 0
  fi
  log "killing the broker (pid $pid) with SIGKILL"
  signal_and_wait "$pid" KILL 10 || die "pid $pid survived SIGKILL"
  rm -f -- "$PID_FILE" "$ADDR_FILE"
}

cmd_status() {
  local pid bootstrap
  if ! pid=$(broker_pid); then
    echo "stopped"
    return 3
  fi
  bootstrap=$(bootstrap_addr)
  if answers "$bootstrap"; then
    echo "running pid=$pid bootstrap=$bootstrap"
    return 0
  fi
  echo "not-answering pid=$pid bootstrap=$bootstrap"
  log "the process runs but does not answer; log: $BROKER_LOG"
  return 3
}

# The address of this run dir's running broker, or a clear error.
running_bootstrap() {
  # The tools may target any cluster: KAFKA_BOOTSTRAP names it.
  if [[ -n ${KAFKA_BOOTSTRAP:-} ]]; then
    printf '%s\n' "$KAFKA_BOOTSTRAP"
    return
  fi
  broker_pid >/dev/null ||
    die "no broker of $RUN is running" "start one: bash scripts/kafka.sh start"
  bootstrap_addr
}

# Run one of Kafka's tools against the running broker (or KAFKA_BOOTSTRAP).
run_tool_on_broker() {
  local tool=$1 bootstrap
  shift
  need_java
  bootstrap=$(running_bootstrap)
  ensure_libs
  run_tool "$tool" --bootstrap-server "$bootstrap" "$@"
}

# console-producer / console-consumer: NAME TOOL HINT-ARGS TOPIC [ARGS...]
cmd_console() {
  local name=$1 tool=$2 hint=$3
  shift 3
  [[ $# -ge 1 && -n $1 && $1 != -* ]] || die "$name needs a topic" "bash scripts/kafka.sh $name TOPIC$hint"
  local topic=$1
  shift
  run_tool_on_broker "$tool" --topic "$topic" "$@"
}

cmd_topics() {
  if [[ $# -eq 0 ]]; then set -- --list; fi
  run_tool_on_broker "$TOPIC_TOOL" "$@"
}

main() {
  local cmd=${1:-}
  if [[ $# -gt 0 ]]; then shift; fi
  case $cmd in
    start | restart | stop | kill | status | fetch) [[ $# -eq 0 ]] || die "'$cmd' takes no arguments (got: $*)" ;;
  esac
  check_settings
  case $cmd in
    start) cmd_start ;;
    restart) cmd_restart ;;
    stop) cmd_stop ;;
    kill) cmd_kill ;;
    status) cmd_status ;;
    console-producer) cmd_console console-producer "$PRODUCER_TOOL" "" "$@" ;;
    console-consumer) cmd_console console-consumer "$CONSUMER_TOOL" " --from-beginning" "$@" ;;
    topics) cmd_topics "$@" ;;
    fetch) need_java && ensure_libs ;;
    -h | --help | help)
      usage
      return 0
      ;;
    "")
      usage
      die "no command given" "bash scripts/kafka.sh start|restart|stop|kill|status|console-producer TOPIC|console-consumer TOPIC|topics"
      ;;
    *)
      usage
      die "unknown command '$cmd'" "bash scripts/kafka.sh start|restart|stop|kill|status|console-producer TOPIC|console-consumer TOPIC|topics"
      ;;
  esac
}

main "$@"
