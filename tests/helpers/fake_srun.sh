#!/usr/bin/env bash
# Stands in for SLURM's srun on one machine (tests/test_multihost.py): starts SLURM_NTASKS
# copies of the command with the variables a SLURM step gives each task, and fails if any does.
set -euo pipefail
while [[ "$1" == --* ]]; do shift; done  # srun's own options
pids=()
for ((task = 0; task < SLURM_NTASKS; task++)); do
  SLURM_PROCID="${task}" SLURM_LOCALID="${task}" "$@" &
  pids+=("$!")
done
status=0
for pid in "${pids[@]}"; do
  wait "${pid}" || status=$?
done
exit "${status}"
