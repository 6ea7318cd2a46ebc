#!/usr/bin/env bash
# The Sightline demo in one command:
#
#   demo/run.sh
#
# builds sightline and sightline-demo (debug profile, shared with
# `cargo test`; PROFILE=release for optimised binaries), installs
# redis-server, nats-server and rabbitmq-server if missing (apt-get), starts
# Sightline, Redis, NATS, RabbitMQ (its own epmd), the gateway, orders and
# worker services on free loopback ports with data in a temporary
# directory, then drives traffic until Ctrl-C, which stops everything and
# removes the temporary directory. Each new order takes a RabbitMQ hop
# (worker -> order.notifications -> order.audit) where the baggage is
# changed, carried on and stopped.
#
# Open http://127.0.0.1:16686 (the query API / UI; DEMO_UI_PORT changes it):
#   curl -s localhost:16686/api/services
#   curl -s 'localhost:16686/api/traces?service=gateway&limit=5'
#
# Environment: PROFILE=debug|release, DEMO_UI_PORT (16686), DEMO_KEEP=1 keeps
# the temporary directory (logs, Sightline data, SQLite) after Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
profile=${PROFILE:-debug}
ui_port=${DEMO_UI_PORT:-16686}

bash demo/ci.sh
nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)

echo "== building sightline and sightline-demo ($profile)"
if [ "$profile" = release ]; then
  cargo build --release -p sightline -p sightline-demo
else
  cargo build -p sightline -p sightline-demo
fi
bin="$root/target/$profile"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
if (exec 3<>"/dev/tcp/127.0.0.1/$ui_port") 2>/dev/null; then
  echo "port $ui_port is taken (another Sightline or Jaeger?): stop it or set DEMO_UI_PORT" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sightline-demo.XXXXXX")
pids=()  # infrastructure: sightline, redis, nats
svcs=()  # demo services and the driver
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "== stopping"
  # services first (they flush their last spans to Sightline), then the rest
  for pid in "${svcs[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${svcs[@]}"; do wait "$pid" 2>/dev/null || true; done
  # the broker first (its script stops the Erlang VM on TERM), then the rest
  if [ -n "${rabbit_pid:-}" ]; then
    kill -TERM "$rabbit_pid" 2>/dev/null || true
    wait "$rabbit_pid" 2>/dev/null || true
  fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${DEMO_KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup INT TERM EXIT

wait_http() { # url what
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not come up; its log:" >&2
  tail -n 30 "$tmp/$2.log" >&2
  exit 1
}
wait_tcp() { # port what
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not come up; its log:" >&2
  tail -n 30 "$tmp/$2.log" >&2
  exit 1
}

grpc=$(free_port); otlp=$(free_port); zipkin=$(free_port); redis_port=$(free_port); nats_port=$(free_port)
gw=$(free_port); orders=$(free_port); worker=$(free_port)
amqp_port=$(free_port); amqp_dist=$(free_port); epmd_port=$(free_port)

echo "== starting in $tmp"
"$bin/sightline" serve --data-dir "$tmp/sightline-data" \
  --otlp-grpc-addr "127.0.0.1:$grpc" --otlp-http-addr "127.0.0.1:$otlp" \
  --http-addr "127.0.0.1:$ui_port" --zipkin-addr "127.0.0.1:$zipkin" >"$tmp/sightline.log" 2>&1 &
pids+=($!)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$tmp" --save "" --appendonly no \
  >"$tmp/redis.log" 2>&1 &
pids+=($!)
"$nats_bin" -a 127.0.0.1 -p "$nats_port" >"$tmp/nats.log" 2>&1 &
pids+=($!)
# RabbitMQ: the broker script itself (the /usr/sbin wrapper switches to the
# rabbitmq user), with its own epmd so nothing outlives the demo.
mkdir -p "$tmp/rabbitmq" && chmod 777 "$tmp/rabbitmq"
epmd -port "$epmd_port" >"$tmp/epmd.log" 2>&1 &
pids+=($!)
ERL_EPMD_PORT=$epmd_port RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$amqp_port \
  RABBITMQ_DIST_PORT=$amqp_dist RABBITMQ_NODENAME="sightline-demo$amqp_port@localhost" \
  RABBITMQ_MNESIA_BASE="$tmp/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$tmp/rabbitmq/log" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$tmp/rabbitmq/enabled_plugins" RABBITMQ_PID_FILE="$tmp/rabbitmq/pid" \
  /usr/lib/rabbitmq/bin/rabbitmq-server >"$tmp/rabbitmq.log" 2>&1 &
rabbit_pid=$!
wait_http "http://127.0.0.1:$ui_port/ready" sightline
wait_tcp "$redis_port" redis
wait_tcp "$nats_port" nats
for _ in $(seq 1 900); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$amqp_port") 2>/dev/null; then break; fi
  sleep 0.1
done

export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
export OTEL_BSP_SCHEDULE_DELAY=500 OTEL_METRIC_EXPORT_INTERVAL=10000 ENVIRONMENT=demo
export REDIS_URL="redis://127.0.0.1:$redis_port" NATS_URL="nats://127.0.0.1:$nats_port"
export AMQP_URL="amqp://guest:guest@127.0.0.1:$amqp_port/%2f"
"$bin/sightline-demo" worker --listen "127.0.0.1:$worker" --database "$tmp/worker.db" >"$tmp/worker.log" 2>&1 &
svcs+=($!)
"$bin/sightline-demo" orders --listen "127.0.0.1:$orders" >"$tmp/orders.log" 2>&1 &
svcs+=($!)
"$bin/sightline-demo" gateway --listen "127.0.0.1:$gw" --orders-url "http://127.0.0.1:$orders" >"$tmp/gateway.log" 2>&1 &
svcs+=($!)
wait_http "http://127.0.0.1:$worker/health" worker
wait_http "http://127.0.0.1:$orders/health" orders
wait_http "http://127.0.0.1:$gw/health" gateway

cat <<INFO

  Sightline UI / query API:  http://127.0.0.1:$ui_port
    curl -s 127.0.0.1:$ui_port/api/services
    curl -s '127.0.0.1:$ui_port/api/traces?service=gateway&limit=5'
  gateway:  http://127.0.0.1:$gw   (POST /auth/login, /api/orders, /health, /metrics)
  logs:     $tmp/*.log  (services write JSON lines with trace_id and span_id),
            and the same events go to Sightline over OTLP (/v1/logs) with their span's ids
  metrics:  curl -s 127.0.0.1:$ui_port/metrics/otlp   (the services' OTLP metrics, Prometheus text)

  Driving traffic; Ctrl-C stops everything.

INFO
"$bin/sightline-demo" drive --gateway "http://127.0.0.1:$gw" &
svcs+=($!)
wait "${svcs[-1]}" || true
