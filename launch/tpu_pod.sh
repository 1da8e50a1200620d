#!/usr/bin/env bash
# Runs facegan_jax on every host of a Cloud TPU VM pod slice (one process per host; JAX finds
# the other hosts itself through --distributed).
#
#   launch/tpu_pod.sh TPU_NAME ZONE --config=configs/celeba.py --workdir=gs://BUCKET/celeba
#
# The repository must be at ~/facegan_jax on every host, installed with:
#   gcloud compute tpus tpu-vm ssh TPU_NAME --zone=ZONE --worker=all \
#     --command="cd ~/facegan_jax && pip install -e '.[data,tpu,gcs]'"
# The workdir is a gs:// URL (the hosts share no filesystem) in a bucket on which the TPU VM's
# service account has roles/storage.objectAdmin (launch/README.md), or a shared filesystem.
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
