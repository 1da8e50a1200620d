"""Joining a multi-process run: `jax.distributed.initialize` from flags or the cluster's environment.

A run is multi-process when (in this order) the flags or FACEGAN_* variables name a process count
above one (launch/local_multihost.sh), `--distributed` asks JAX to detect the cluster (TPU VM
pods, Kubernetes), or SLURM / Open MPI started several tasks. Otherwise nothing is initialised
and the run uses the local devices.
"""

import os
import socket
import time

import jax
from absl import logging

from facegan_jax.system.errors import UserError

ENV_PREFIX = 'FACEGAN_'


def _explicit(value, name, environ, cast=str):
  """A flag's value, else FACEGAN_<NAME> from the environment, else None."""
  if value is not None:
    return value
  raw = environ.get(ENV_PREFIX + name.upper())
  return cast(raw) if raw not in (None, '') else None


def cluster_settings(coordinator_address=None, num_processes=None, process_id=None,
                     auto_detect=False, environ=None):
  """Keyword arguments for `jax.distributed.initialize`, or None for a single-process run.

  An empty dict means 'let JAX detect the cluster from its environment'.
  """
  environ = os.environ if environ is None else environ
  address = _explicit(coordinator_address, 'coordinator_address', environ)
  count = _explicit(num_processes, 'num_processes', environ, int)
  index = _explicit(process_id, 'process_id', environ, int)
  if count is not None and count > 1:
    if not address or index is None or not 0 <= index < count:
      raise UserError(f'a run of {count} processes needs --coordinator_address=HOST:PORT and '
                      f'--process_id in [0, {count}) for each process (got {address!r} and '
                      f'{index!r}); launch/local_multihost.sh sets them.')
    return {'coordinator_address': address, 'num_processes': count, 'process_id': index}
  if auto_detect:
    return {}
  for tasks in ('SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE'):
    if int(environ.get(tasks, '1') or 1) > 1:
      return {}
  return None


def wait_for_coordinator(address: str, timeout: float):
  """Returns once a TCP connection to HOST:PORT succeeds; UserError after `timeout` seconds.

  JAX aborts the whole process when it cannot register with the coordinator, so processes
  other than 0 check that it is reachable first and fail with a message instead.
  """
  host, _, port = address.rpartition(':')
  deadline = time.monotonic() + timeout
  while True:
    try:
      with socket.create_connection((host, int(port)), timeout=1.0):
        return
    except OSError:
      if time.monotonic() >= deadline:
        raise UserError(f'cannot reach the coordinator at {address} within {timeout:g} s; start '
                        'process 0 first, check that this host can reach that address and port '
                        '(firewall), or raise --coordinator_timeout.') from None
      time.sleep(0.2)


def initialize(settings, timeout: int):
  """Joins the multi-process run described by `settings` (see `cluster_settings`)."""
  # Collectives between CPU processes need an implementation; GPU and TPU ignore this.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  if settings.get('process_id', 0) != 0:
    wait_for_coordinator(settings['coordinator_address'], timeout)
  jax.distributed.initialize(**settings, initialization_timeout=timeout)
  logging.info('Process %d of %d; %d local and %d global devices.', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
