#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft) on loopback, assembled from Maven Central.
#   scripts/kafka.sh start|stop|restart|status|wait|acls
# KAFKA_HOME (default .kafka/) keeps jars, data and logs; data survives stop/start.
# KAFKA_PORT (default 19092) is the client port; the controller uses KAFKA_PORT+1.
# KAFKA_LIB (default $KAFKA_HOME/lib): where the jars go; brokers may share one copy.
#
# KAFKA_SASL=1: a broker with authentication and ACLs instead (default .kafka-sasl/, port 19094,
# so it runs beside the plaintext one): SCRAM-SHA-256 on the client listener, StandardAuthorizer,
# nothing allowed without an ACL. Principals: admin (super user; the broker itself and this
# script), worker, gateway, learner; passwords from KAFKA_{ADMIN,WORKER,GATEWAY,LEARNER}_PASSWORD
# (local defaults <name>-secret; no whitespace or quotes). The ACLs (see acl_policy) cover the
# topics of STREAMRANK_TOPIC_PREFIX and STREAMRANK_APP_ID (default streamrank); `acls` applies
# them again, e.g. for another prefix. Users and ACLs are set at every start, except admin's
# password: it is fixed when the data folder is formatted (a new one needs a fresh KAFKA_HOME).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
sasl=${KAFKA_SASL:-0}
[ "$sasl" = 1 ] || sasl=0
if [ "$sasl" = 1 ]; then
  home=${KAFKA_HOME:-$root/.kafka-sasl}
  port=${KAFKA_PORT:-19094}
else
  home=${KAFKA_HOME:-$root/.kafka}
  port=${KAFKA_PORT:-19092}
fi
cport=$((port + 1))
lib=${KAFKA_LIB:-$home/lib}
data=$home/data
logs=$home/logs
pidfile=$home/kafka.pid
props=$home/server.properties

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

fetch_jars() {
  local stamp; stamp=$(sha256sum "$here/kafka/pom.xml" | cut -c1-16)
  [ -f "$lib/.stamp-$stamp" ] && return 0
  echo "kafka: fetching broker jars from Maven Central into $lib" >&2
  rm -rf "$lib"; mkdir -p "$lib"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$lib" -DincludeScope=runtime >&2
  touch "$lib/.stamp-$stamp"
}

plaintext_listeners() {
  cat <<PROPS
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
PROPS
}

admin_pw=${KAFKA_ADMIN_PASSWORD:-admin-secret}
scram_login="org.apache.kafka.common.security.scram.ScramLoginModule required"

sasl_listeners() {
  # The controller listener takes SASL/PLAIN with one static user, admin, instead of PLAINTEXT:
  # the broker part of this process logs in to the controller part with it, and with an
  # authorizer the controller grants broker registration and heartbeats only to a super user.
  # PLAINTEXT would make that principal User:ANONYMOUS, a super user open to any local process
  # (a controller listener also takes admin requests, ACL changes among them). Not SCRAM: PLAIN's
  # users live in this file, so the controller can check them before any metadata is loaded.
  cat <<PROPS
listeners=SASL_PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=$scram_login username="admin" password="$admin_pw";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin_pw" user_admin="$admin_pw";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
PROPS
}

write_props() (  # a subshell: the umask stays here
  [ "$sasl" = 0 ] || umask 077  # the SASL broker's two files hold the admin password
  mkdir -p "$data" "$logs"
  { cat <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
PROPS
    if [ "$sasl" = 1 ]; then sasl_listeners; else plaintext_listeners; fi
    cat <<PROPS
log.dirs=$data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
message.max.bytes=10485760
log.retention.hours=-1
PROPS
  } > "$props"
  if [ "$sasl" = 1 ]; then
    cat > "$home/admin.properties" <<PROPS
bootstrap.servers=127.0.0.1:$port
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=$scram_login username="admin" password="$admin_pw";
PROPS
  fi
)

acl_policy() {
  # What each principal may do on one shop's topics (streamrank's Topics, Faust's names).
  local p=${STREAMRANK_TOPIC_PREFIX:-streamrank} a=${STREAMRANK_APP_ID:-streamrank}
  cat <<POLICY
user worker ${KAFKA_WORKER_PASSWORD:-worker-secret}
user gateway ${KAFKA_GATEWAY_PASSWORD:-gateway-secret}
user learner ${KAFKA_LEARNER_PASSWORD:-learner-secret}
# worker: the Faust app and its start-up (ensure_topics). It reads events, catalog and
# item-events, writes item-events, samples and dead letters, and Faust creates, writes and
# reads its tables' changelogs and its leader topic, all named "$a-...". Its consumer group is
# the app id. No transactions (Faust runs at-least-once here), so no TRANSACTIONAL_ID grants.
allow User:worker READ,WRITE,CREATE,DESCRIBE TOPIC PREFIXED $p.
allow User:worker READ,WRITE,CREATE,DESCRIBE TOPIC PREFIXED $a-
allow User:worker READ,DESCRIBE GROUP PREFIXED $a
# Only the learner writes model versions; the gateways' admin API alone sends commands.
deny User:worker WRITE TOPIC LITERAL $p.model-updates
deny User:worker WRITE TOPIC LITERAL $p.model-commands
# gateway: follows the changelogs and model updates (no group), takes events and catalog
# changes, dead-letters what it cannot apply, sends admin commands to the learner.
allow User:gateway READ,DESCRIBE TOPIC PREFIXED $a-
allow User:gateway READ,DESCRIBE TOPIC LITERAL $p.model-updates
# ... and the item vectors `streamrank encoder` writes (it runs as worker: it reads the catalog
# changelog, creates the topics at start and writes $p.item-vectors).
allow User:gateway READ,DESCRIBE TOPIC LITERAL $p.item-vectors
allow User:gateway WRITE,DESCRIBE TOPIC LITERAL $p.events
allow User:gateway WRITE,DESCRIBE TOPIC LITERAL $p.catalog
allow User:gateway WRITE,DESCRIBE TOPIC LITERAL $p.dead-letters
allow User:gateway WRITE,DESCRIBE TOPIC LITERAL $p.model-commands
# learner (`streamrank learner`, its own principal): samples and commands in, versions out;
# its consumer group is the lock that picks the one active learner.
allow User:learner READ,DESCRIBE TOPIC LITERAL $p.samples
allow User:learner READ,DESCRIBE GROUP LITERAL $a-learner
allow User:learner READ,DESCRIBE TOPIC LITERAL $p.model-commands
allow User:learner READ,WRITE,DESCRIBE TOPIC LITERAL $p.model-updates
allow User:learner WRITE,DESCRIBE TOPIC LITERAL $p.dead-letters
# Every producer of the project is idempotent.
allow User:worker IDEMPOTENT_WRITE CLUSTER LITERAL kafka-cluster
allow User:gateway IDEMPOTENT_WRITE CLUSTER LITERAL kafka-cluster
allow User:learner IDEMPOTENT_WRITE CLUSTER LITERAL kafka-cluster
POLICY
}

apply_acls() {
  [ "$sasl" = 1 ] || { echo "kafka: acls only with KAFKA_SASL=1" >&2; return 2; }
  acl_policy | java -cp "$lib/*" -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$logs" "$here/kafka/Acls.java" "$home/admin.properties"
}

java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Dlog4j2.configurationFile="$here/kafka/log4j2.properties")

do_wait() {
  local deadline=$((SECONDS + ${1:-90}))
  until answers && grep -q "Kafka Server started" "$logs/server.log" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "kafka: not answering on 127.0.0.1:$port; see $logs/server.log" >&2; return 1
    fi
    if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "kafka: broker process died; last log lines:" >&2; tail -20 "$logs/server.log" >&2 || true; return 1
    fi
    sleep 0.5
  done
}

do_start() {
  if answers; then echo "kafka: already answering on 127.0.0.1:$port"; return 0; fi
  fetch_jars
  write_props
  if [ ! -f "$data/meta.properties" ]; then
    local scram=()
    # admin's SCRAM credentials go into the metadata from the start: the broker's own
    # inter-broker login and this script's ACL step use them (the other users: apply_acls).
    [ "$sasl" = 1 ] && scram=(--add-scram "SCRAM-SHA-256=[name=admin,password=$admin_pw]")
    java -cp "$lib/*" "${java_opts[@]}" -Dkafka.logs.dir="$logs" kafka.tools.StorageTool format \
      -t "$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null)" -c "$props" "${scram[@]}" >/dev/null
  fi
  : > "$logs/server.log"
  # setsid: the broker outlives the shell that started it and is stopped by pid.
  setsid nohup java -cp "$lib/*" "${java_opts[@]}" -Dkafka.logs.dir="$logs" kafka.Kafka "$props" \
    > "$logs/stdout.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  do_wait 120
  [ "$sasl" = 0 ] || apply_acls
  echo "kafka: up on 127.0.0.1:$port (pid $(cat "$pidfile"), data $data$([ "$sasl" = 0 ] || echo ", SASL"))"
}

do_stop() {
  [ -f "$pidfile" ] || { echo "kafka: not started by this script"; return 0; }
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pidfile"
  echo "kafka: stopped"
}

case "${1:-}" in
  start) do_start ;;
  stop) do_stop ;;
  restart) do_stop; do_start ;;
  wait) do_wait "${2:-90}" ;;
  acls) apply_acls ;;
  status) if answers; then echo "kafka: up on 127.0.0.1:$port"; else echo "kafka: down"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|restart|status|wait|acls" >&2; exit 2 ;;
esac
