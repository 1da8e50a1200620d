"""The deterministic stream of training batches: which images each step sees, on which host.

The images are one uint8 array [N, H, W, C] from `image_sources` (an in-memory array or the
memmap of a prepared cache). The order is a pure function of (seed, epoch): epoch e visits the
examples in `np.random.default_rng([seed, e]).permutation(N)`, so the examples of any step are
known without replaying the stream, a resumed run continues at exactly the next example, and
each process takes its own contiguous slice of every global batch: the slices of all processes
are disjoint and together they are the global batch. The step scales and flips the images on
the device (`images.to_model_range`, `augment.random_flip`).

Labels (float32 [N, c_dim], `image_sources.load_dataset`), when a run has them, are gathered
with the same indices as their images and travel beside them as a pair (images, labels); a
horizontal flip leaves a face's labels true. Without labels the stream is exactly the images
alone, as it was before labels existed.

Why numpy index arithmetic rather than grain or tf.data: the plan is numpy's seeded permutation
(the well-kept part) plus one line of arithmetic (`step_indices`), and a batch is then a single
vectorised gather `images[indices]` from the memmap, well above what an accelerator consumes;
grain reads and batches one record per Python call and would be a new dependency, and tf.data
would put TensorFlow on the hot path of every run for what is a gather (benchmarks/README.md,
'Input pipeline', has the figures).
"""

import functools
import queue
import threading
from typing import Iterator, Optional

import jax
import numpy as np

from facegan_jax.system import parallel


@functools.lru_cache(maxsize=4)
def epoch_order(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The order in which epoch `epoch` visits the examples: a permutation of range(N), int64.

  Memoised (read-only) because permuting CelebA's 202,599 indices costs milliseconds, more than
  serving a batch; every step of an epoch reuses it.
  """
  order = np.random.default_rng([seed, epoch]).permutation(num_examples)
  order.flags.writeable = False
  return order


def step_indices(seed: int, step: int, num_examples: int, per_step: int) -> np.ndarray:
  """Example indices of global step `step`, [per_step]: stream positions step*per_step onward."""
  positions = np.arange(step * per_step, (step + 1) * per_step)
  epochs = positions // num_examples
  indices = np.empty(per_step, np.int64)
  for epoch in np.unique(epochs):
    here = epochs == epoch
    indices[here] = epoch_order(seed, int(epoch), num_examples)[positions[here] % num_examples]
  return indices


def host_batches(images: np.ndarray, *, seed: int, start_step: int, batch_size: int,
                 d_steps: int = 1, process_index: int = 0, process_count: int = 1,
                 labels: Optional[np.ndarray] = None) -> Iterator:
  """Yields this process's real images for steps start_step, start_step + 1, ...

  Each item is [d_steps, batch_size / process_count, H, W, C] uint8: the process's contiguous
  slice of the global batch of each discriminator update, gathered from `images` (an array or a
  memmap: only this process's rows are read). With `labels` [N, c_dim], each item is the pair
  (those images, their labels [d_steps, batch_size / process_count, c_dim]).
  """
  local = batch_size // process_count
  step = start_step
  while True:
    indices = step_indices(seed, step, len(images), d_steps * batch_size).reshape(d_steps, -1)
    mine = indices[:, process_index * local:(process_index + 1) * local]
    batch = np.asarray(images[mine])
    yield batch if labels is None else (batch, np.asarray(labels[mine]))
    step += 1


def prefetch(items: Iterator, size: int) -> Iterator:
  """The items of `items` in their order, produced up to `size` ahead by a background thread.

  One producer and a FIFO queue keep the order; an exception of the producer is raised where
  the item would have been read; closing the returned iterator stops the thread. size 0: no
  thread.
  """
  if size == 0:
    yield from items
    return
  ready = queue.Queue(size)
  stop = threading.Event()
  end = object()

  def put(entry) -> bool:
    """Queues `entry`; False if the consumer has gone first."""
    while not stop.is_set():
      try:
        ready.put(entry, timeout=0.1)  # wakes up to notice a consumer that has gone
        return True
      except queue.Full:
        pass
    return False

  def produce():
    try:
      for item in items:
        if not put((item, None)):
          return
      put((end, None))
    except Exception as error:  # pylint: disable=broad-except
      put((None, error))

  producer = threading.Thread(target=produce, daemon=True)
  producer.start()
  try:
    while True:
      item, error = ready.get()
      if error is not None:
        raise error
      if item is end:
        return
      yield item
  finally:
    stop.set()
    producer.join()  # so that no thread is left inside JAX when the interpreter exits


def global_batches(images: np.ndarray, mesh: jax.sharding.Mesh, *, seed: int, start_step: int,
                   batch_size: int, d_steps: int, prefetch_size: int,
                   labels: Optional[np.ndarray] = None) -> Iterator:
  """Yields the global batches of steps start_step, start_step + 1, ..., sharded over `mesh`.

  Each is [d_steps, batch_size, H, W, C] uint8 (`parallel.batch_sharding`), or with `labels`
  the pair (images, labels [d_steps, batch_size, c_dim] float32) sharded alike; this process
  gathers and transfers only its own rows (`host_batches`), `prefetch_size` steps ahead of the
  caller.
  """
  local = host_batches(images, seed=seed, start_step=start_step, batch_size=batch_size,
                       d_steps=d_steps, process_index=jax.process_index(),
                       process_count=jax.process_count(), labels=labels)
  to_global = functools.partial(parallel.host_batch_to_global, mesh=mesh)
  return prefetch((jax.tree_util.tree_map(to_global, batch) for batch in local), prefetch_size)
