#!/usr/bin/env bash
# Installs the Debian packages the demo and its integration tests need
# (redis-server, nats-server; rabbitmq-server for the AMQP carrier test;
# openssl for the TLS export test's certificates),
# only when missing: quick when already there.
# Called by .ci/run before `cargo test`; also by demo/run.sh.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
if [ "${DEMO_ONLY:-0}" != 1 ]; then
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} (apt-get)"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
