"""Training images as uint8 arrays on the host, and the order in which they reach the step.

Every source is reduced once to one uint8 array [N, H, W, C] at the model's resolution; the
step scales it to [-1, 1] and flips it on the device. 'celeb_a' (TFDS) and 'folder' are
decoded, cropped and resized once (`image_sources`) into an on-disk cache (`image_cache`) that
later runs memory-map; 'toy2x2' and 'lfw_subset' are small enough to build in memory.

The order is a pure function of (seed, epoch): epoch e visits the examples in
`np.random.default_rng([seed, e]).permutation(N)`, so the examples of any step are known without
replaying the stream, a resumed run continues at exactly the next example, and each process
takes its own contiguous slice of every global batch: the slices of all processes are disjoint
and together they are the global batch.

Why numpy index arithmetic rather than grain or tf.data: the plan is numpy's seeded permutation
(the well-kept part) plus one line of arithmetic (`step_indices`), and a batch is then a single
vectorised gather `images[indices]` from the memmap: 200,000-400,000 64x64 images/s on 2 cores,
handed to JAX included (benchmarks/input_pipeline.py). grain reads and batches one record per
Python call: on the same memmap and machine, grain 0.2.18 served 29,000 images/s
(`MapDataset.source(images).seed(0).shuffle().batch(128)`) and 2,200 (`DataLoader`, no
workers), below the 130,000 images/s that an H100 takes, and it would be a new dependency.
tf.data would put TensorFlow on the hot path of every run for what is a gather. TFDS does what
it does well: download, verify and decode CelebA, once, into the cache.
"""

import functools
import os
import queue
import threading
from typing import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from PIL import Image

from facegan_jax import image_cache
from facegan_jax import image_sources
from facegan_jax import parallel
from facegan_jax.errors import UserError

TOY_EXAMPLES = 4096


def toy_faces(seed: int, count: int = TOY_EXAMPLES) -> np.ndarray:
  """The 2x2 'slanted faces': dark (high) top-left and bottom-right, light others.

  Returns [count, 2, 2, 1] uint8; high pixels in [0.8, 1], low ones in [0, 0.2] (x 255), so
  every example passes `is_toy_face`.
  """
  rng = np.random.default_rng([seed, 2, 2])
  high = rng.uniform(0.8, 1.0, (count, 2))
  low = rng.uniform(0.0, 0.2, (count, 2))
  faces = np.stack([high[:, 0], low[:, 0], low[:, 1], high[:, 1]], axis=1).reshape(count, 2, 2, 1)
  return np.rint(faces * 255).astype(np.uint8)


def toy_face_score(images) -> np.ndarray:
  """The seed's rule on [B, 2, 2, 1] images in [-1, 1]: TL + BR - TR - BL on a [0, 1] scale."""
  pixels = (np.asarray(images, np.float32)[..., 0] + 1.0) / 2.0
  return pixels[:, 0, 0] + pixels[:, 1, 1] - pixels[:, 0, 1] - pixels[:, 1, 0]


def is_toy_face(images, threshold: float = 1.0) -> np.ndarray:
  """[B] bool: the seed's rule, score above the threshold (1 in the seed)."""
  return toy_face_score(images) > threshold


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
  """[N, h, w, C] uint8 -> [N, size, size, C] uint8 with Lanczos (antialiased) resampling."""
  def resize(image):
    pixels = image[..., 0] if image.shape[-1] == 1 else image
    resized = np.asarray(Image.fromarray(pixels).resize((size, size), Image.LANCZOS))
    return resized.reshape(size, size, image.shape[-1])
  return np.stack([resize(image) for image in images])


def lfw_faces(resolution: int) -> np.ndarray:
  """The 100 real 25x25 grayscale LFW faces that scikit-image ships: [100, res, res, 1] uint8."""
  try:
    from skimage import data as skimage_data  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise UserError("config.data.source='lfw_subset' needs scikit-image; "
                    "install it with: pip install -e '.[demo]'") from error
  faces = skimage_data.lfw_subset()[:100]  # the rest are non-face patches
  faces = np.rint(faces * 255).astype(np.uint8)[..., None]
  return resize_uint8(faces, resolution)


SOURCES = ('toy2x2', 'lfw_subset', 'celeb_a', 'folder')


def data_dir(data: ml_collections.ConfigDict) -> str:
  """TFDS's data directory: config.data.data_dir, else $TFDS_DATA_DIR or ~/tensorflow_datasets."""
  if data.data_dir:
    return os.path.abspath(os.path.expanduser(data.data_dir))
  from tensorflow_datasets.core import constants  # pylint: disable=g-import-not-at-top
  return os.path.abspath(os.path.expanduser(constants.DATA_DIR))


def cache_dir(data: ml_collections.ConfigDict) -> str:
  """Where prepared images are cached: config.data.cache_dir, else <data_dir>/facegan_jax_cache."""
  if data.cache_dir:
    return os.path.abspath(os.path.expanduser(data.cache_dir))
  return os.path.join(data_dir(data), 'facegan_jax_cache')


def _check_prepared_fields(data: ml_collections.ConfigDict):
  for field in ('crop', 'max_examples', 'threads'):
    if data[field] < 0:
      raise UserError(f'config.data.{field}={data[field]} must be 0 or more.')


def check_data_config(data: ml_collections.ConfigDict):
  """UserError unless `data.source` is known and, for 'folder', `data.path` is a directory."""
  if data.source not in SOURCES:
    raise UserError(f'config.data.source={data.source!r} is unknown; use one of {SOURCES}.')
  if data.source == 'folder':
    image_sources.check_folder(data.path)


def prepare_source(config: ml_collections.ConfigDict) -> image_cache.Cached:
  """The 'celeb_a' or 'folder' images of `config.data`, from the cache or prepared into it.

  Returns the memmapped images [N, res, res, channels] uint8 and the number of unreadable
  files left out; logs where they came from and warns about skipped files.
  """
  data, model = config.data, config.model
  _check_prepared_fields(data)
  image_shape = (model.resolution, model.resolution, model.channels)
  key = dict(source=data.source, crop=data.crop, resolution=model.resolution,
             channels=model.channels, max_examples=data.max_examples)
  if data.source == 'celeb_a':
    key['split'] = data.split
    name = f'celeb_a/{data.split}'
  else:
    files = image_sources.folder_files(data.path)
    name = os.path.abspath(data.path)
    key.update(path=name, fingerprint=image_sources.folder_fingerprint(data.path, files),
               decoder=image_sources.DECODER_VERSION)
  path = image_cache.cache_path(cache_dir(data), key)
  cached = image_cache.load(path)
  if cached is not None:
    logging.info('Read %d prepared images of %s from %s.', len(cached.images), name, path)
  else:
    if data.source == 'celeb_a':
      encoded, capacity = image_sources.celeb_a_files(data_dir(data), data.split,
                                                      data.max_examples)
      names = None  # examples are named by their index in the split
    else:
      encoded = image_sources.read_files(data.path, files)
      capacity = min(len(files), data.max_examples or len(files))
      names = files
    prepare = functools.partial(image_sources.prepare_image, crop=data.crop,
                                resolution=model.resolution, channels=model.channels)
    examples = image_sources.ordered_map(prepare, encoded, data.threads or os.cpu_count())
    cached = image_cache.write(path, key, examples, capacity, image_shape, names)
  if cached.skipped:
    named = ', '.join(cached.skipped_names)
    more = cached.skipped - len(cached.skipped_names)
    logging.warning('Skipped %d unreadable file(s) of %s (not an image, truncated or corrupt): '
                    '%s%s.', cached.skipped, name, named, f' and {more} more' if more else '')
  if not len(cached.images):
    raise UserError(f'config.data.source={data.source!r} gave no readable images from {name}; '
                    f'check that the files are JPEG or PNG images.')
  return cached


def load_images(config: ml_collections.ConfigDict) -> np.ndarray:
  """All training images of `config.data` at `config.model.resolution`: [N, H, W, C] uint8.

  'celeb_a' and 'folder' images are a read-only memmap of their cache.
  """
  source = config.data.source
  if source == 'toy2x2':
    images = toy_faces(config.seed)[:config.data.max_examples or None]
  elif source == 'lfw_subset':
    images = lfw_faces(config.model.resolution)[:config.data.max_examples or None]
  elif source in ('celeb_a', 'folder'):
    images = prepare_source(config).images
  else:
    raise UserError(f'config.data.source={source!r} is unknown; use one of {SOURCES}.')
  expected = (config.model.resolution, config.model.resolution, config.model.channels)
  if images.shape[1:] != expected:
    raise UserError(f'config.data.source={source!r} gives images of shape {images.shape[1:]}, '
                    f'but config.model expects {expected}; set config.model.resolution and '
                    f'config.model.channels to match.')
  return images


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
                 d_steps: int = 1, process_index: int = 0,
                 process_count: int = 1) -> Iterator[np.ndarray]:
  """Yields this process's real images for steps start_step, start_step + 1, ...

  Each item is [d_steps, batch_size / process_count, H, W, C] uint8: the process's contiguous
  slice of the global batch of each discriminator update, gathered from `images` (an array or a
  memmap: only this process's rows are read).
  """
  local = batch_size // process_count
  step = start_step
  while True:
    indices = step_indices(seed, step, len(images), d_steps * batch_size).reshape(d_steps, -1)
    yield np.asarray(images[indices[:, process_index * local:(process_index + 1) * local]])
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
                   batch_size: int, d_steps: int, prefetch_size: int) -> Iterator[jax.Array]:
  """Yields the global batches of steps start_step, start_step + 1, ..., sharded over `mesh`.

  Each is [d_steps, batch_size, H, W, C] uint8 (`parallel.batch_sharding`); this process gathers
  and transfers only its own rows (`host_batches`), `prefetch_size` steps ahead of the caller.
  """
  local = host_batches(images, seed=seed, start_step=start_step, batch_size=batch_size,
                       d_steps=d_steps, process_index=jax.process_index(),
                       process_count=jax.process_count())
  return prefetch((parallel.host_batch_to_global(batch, mesh) for batch in local), prefetch_size)


def to_model_range(images):
  """uint8 [..., H, W, C] -> float32 in [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def random_flip(key, images):
  """Flips each image of [..., B, H, W, C] left-right with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, images.shape[:-3])
  return jnp.where(flip[..., None, None, None], images[..., ::-1, :], images)
