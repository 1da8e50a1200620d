#!/usr/bin/env bash
# Runs facegan_jax on every host of a Cloud TPU VM pod slice (one process per host; JAX finds
# the other hosts itself through --distributed).
#
#   launch/tpu_pod.sh TPU_NAME ZONE --config=configs/celeba.py --workdir=/mnt/shared/celeba
#
# The repository must be at ~/facegan_jax on every host, installed with:
#   gcloud compute tpus tpu-vm ssh TPU_NAME --zone=ZONE --worker=all \
#     --command="cd ~/facegan_jax && pip install -e '.[data,tpu]'"
# The workdir must be a path that every host sees (NFS/Filestore or a gcsfuse mount).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 TPU_NAME ZONE --config=... --workdir=... [flags]" >&2
  exit 2
fi
tpu_name="$1"
zone="$2"
shift 2

printf -v flags ' %q' "$@"
gcloud compute tpus tpu-vm ssh "${tpu_name}" --zone="${zone}" --worker=all \
  --command="cd ~/facegan_jax && python3 -m facegan_jax.main --distributed${flags}"
