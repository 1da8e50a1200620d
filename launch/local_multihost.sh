#!/usr/bin/env bash
# Starts N facegan_jax processes on this machine that join one run over 127.0.0.1, as the hosts
# of a pod or cluster would. Each process uses the local devices it sees (on a CPU, set
# XLA_FLAGS=--xla_force_host_platform_device_count=K for K devices per process).
#
#   launch/local_multihost.sh N --config=configs/lfw_demo.py --workdir=/tmp/run [more flags]
#
# Environment: PYTHON (default python3), FACEGAN_PORT (default: a free port). If one process
# fails, the others are stopped and the script exits with status 1.
set -euo pipefail

if [[ $# -lt 1 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 NUM_PROCESSES --config=... --workdir=... [flags]" >&2
  exit 2
fi
num_processes="$1"
shift
python="${PYTHON:-python3}"
port="${FACEGAN_PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

pids=()
stop_all() {
  kill "${pids[@]}" 2>/dev/null || true
}
trap stop_all INT TERM

for ((index = 0; index < num_processes; index++)); do
  "$python" -m facegan_jax.main --coordinator_address="127.0.0.1:${port}" \
    --num_processes="${num_processes}" --process_id="${index}" "$@" &
  pids+=("$!")
done

status=0
for ((left = num_processes; left > 0; left--)); do
  if ! wait -n; then
    status=1
    stop_all
  fi
done
exit "${status}"
