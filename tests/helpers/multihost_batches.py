"""One process of a local multi-process run: saves the real images this process feeds.

  python tests/helpers/multihost_batches.py OUT_PREFIX COORDINATOR NUM_PROCESSES PROCESS_ID

Images are labelled by index (first pixel), so the test can tell which examples each process
read. Used by tests/test_multihost.py.
"""

import sys

import jax
import numpy as np

from facegan_jax.data import input_pipeline
from facegan_jax.system import distributed

NUM_EXAMPLES, BATCH_SIZE, STEPS = 40, 8, 3


def labelled_images():
  images = np.zeros((NUM_EXAMPLES, 2, 2, 1), np.int64)
  images[:, 0, 0, 0] = np.arange(NUM_EXAMPLES)
  return images


def main(prefix, address, num_processes, process_id):
  distributed.initialize(
      distributed.cluster_settings(address, int(num_processes), int(process_id)), 60)
  batches = input_pipeline.host_batches(
      labelled_images(), seed=0, start_step=0, batch_size=BATCH_SIZE,
      process_index=jax.process_index(), process_count=jax.process_count())
  np.save(f'{prefix}_{jax.process_index()}.npy', np.stack([next(batches) for _ in range(STEPS)]))


if __name__ == '__main__':
  main(*sys.argv[1:])
