#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft) on loopback, assembled from Maven Central.
#   scripts/kafka.sh start|stop|restart|status|wait
# KAFKA_HOME (default .kafka/) keeps jars, data and logs; data survives stop/start.
# KAFKA_PORT (default 19092) is the client port; the controller uses KAFKA_PORT+1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
home=${KAFKA_HOME:-$root/.kafka}
port=${KAFKA_PORT:-19092}
cport=$((port + 1))
lib=$home/lib
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

write_props() {
  mkdir -p "$data" "$logs"
  cat > "$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
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
    java -cp "$lib/*" "${java_opts[@]}" -Dkafka.logs.dir="$logs" kafka.tools.StorageTool format \
      -t "$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null)" -c "$props" >/dev/null
  fi
  : > "$logs/server.log"
  # setsid: the broker outlives the shell that started it and is stopped by pid.
  setsid nohup java -cp "$lib/*" "${java_opts[@]}" -Dkafka.logs.dir="$logs" kafka.Kafka "$props" \
    > "$logs/stdout.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  do_wait 120
  echo "kafka: up on 127.0.0.1:$port (pid $(cat "$pidfile"), data $data)"
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
  status) if answers; then echo "kafka: up on 127.0.0.1:$port"; else echo "kafka: down"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|restart|status|wait" >&2; exit 2 ;;
esac
