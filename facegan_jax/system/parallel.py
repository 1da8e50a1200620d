"""Data parallelism by sharding: one mesh with a 'data' axis over every device of every host.

The batch is split along 'data' and the train state is replicated, so `jax.jit` runs the same
global function on 1 or N devices: means (losses, BatchNorm statistics) are over the global batch.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from facegan_jax.system.errors import UserError

DATA_AXIS = 'data'


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (the train state, sample latents)."""
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Real batches [d_steps, B, H, W, C] are split along B."""
  return NamedSharding(mesh, PartitionSpec(None, DATA_AXIS))


def check_batch_size(batch_size: int, devices: int, field: str = 'train.batch_size'):
  """Raises UserError unless the global batch `config.<field>` splits evenly over `devices`."""
  if batch_size <= 0 or batch_size % devices:
    raise UserError(f'config.{field}={batch_size} does not split over {devices} '
                    f'devices; use a positive multiple of {devices}.')


def host_batch_to_global(local_batch: np.ndarray, mesh: Mesh) -> jax.Array:
  """Assembles each process's rows [d_steps, B / P, ...] into the global sharded batch."""
  d_steps, local_size = local_batch.shape[:2]
  global_shape = (d_steps, local_size * jax.process_count()) + local_batch.shape[2:]
  return jax.make_array_from_process_local_data(batch_sharding(mesh), local_batch, global_shape)
