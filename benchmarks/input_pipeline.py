"""Images/s of the input pipeline: a cold pass that builds the cache, then cached passes.

  python benchmarks/input_pipeline.py [--images=2000] [--cached_images=202599] [--passes=5]
      [--source=folder|zip] [--labels]

Cold pass: `--images` JPEG faces of CelebA's size (178x218, crops of scikit-image's astronaut
portrait) in a folder, or with --source=zip stored in a dataset zip as NVIDIA's dataset_tool.py
writes one (members '00000/img00000000.jpg', ..., ZIP_STORED), are decoded, cropped to 140,
resized to 64x64 and written to the cache by `image_sources.prepare_source` (the same code
prepares celeb_a). --labels adds a dataset.json of class ids (10 classes) that is read with
them and served one-hot with every batch. Cached passes: a cache of
`--cached_images` 64x64 images (CelebA's 202,599 by default, tiled from the cold pass) is served
by `input_pipeline.global_batches` (gather from the memmap, hand to JAX, prefetch thread) at
batch 128 and 256; each pass times `--steps` batches, and the median of `--passes` is printed.
Then a consumer that sleeps as long as a step that takes `--consumer_rate` images/s (an H100
running DCGAN-64) reads the batches: the time each next(batches) takes is printed.
"""

import json
import os
import statistics
import sys
import tempfile
import time
import zipfile

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import extras

extras.require({'skimage': "pip install -e '.[demo]'"})

import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from absl import app
from absl import flags
from PIL import Image
from skimage import data as skimage_data

from configs import celeba
from facegan_jax.data import image_sources
from facegan_jax.data import input_pipeline
from facegan_jax.system import parallel

flags.DEFINE_integer('images', 2000, 'Images in the folder of the cold pass.')
flags.DEFINE_integer('cached_images', 202_599, 'Images in the cache of the cached passes.')
flags.DEFINE_integer('passes', 5, 'Timed cached passes per batch size (the median is printed).')
flags.DEFINE_integer('steps', 1000, 'Batches per cached pass.')
flags.DEFINE_integer('consumer_rate', 130_000, 'Images/s taken by the simulated train step.')
flags.DEFINE_enum('source', 'folder', ['folder', 'zip'], 'Where the cold pass reads the JPEGs.')
flags.DEFINE_bool('labels', False, 'Read and serve class labels (dataset.json) with the images.')
FLAGS = flags.FLAGS

BATCH_SIZES = (128, 256)


def write_faces(folder: str, count: int) -> list[str]:
  """`count` 178x218 JPEG crops of the astronaut portrait at varied offsets, like CelebA's, in
  dataset_tool.py's layout; with --labels a dataset.json of class ids. Returns their names."""
  portrait = skimage_data.astronaut()
  offsets = np.random.default_rng(0).integers(0, 512 - 218, (count, 2))
  names = [f'{i // 1000:05d}/img{i:08d}.jpg' for i in range(count)]
  for name, (top, left) in zip(names, offsets):
    os.makedirs(os.path.join(folder, os.path.dirname(name)), exist_ok=True)
    Image.fromarray(portrait[top:top + 218, left:left + 178]).save(
        os.path.join(folder, name), quality=90)
  if FLAGS.labels:
    with open(os.path.join(folder, 'dataset.json'), 'w') as f:
      json.dump({'labels': [[name, i % 10] for i, name in enumerate(names)]}, f)
  return names


def zipped(folder: str, names: list[str]) -> str:
  """The folder's images (and dataset.json) stored in a zip as dataset_tool.py does."""
  path = folder + '.zip'
  with zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_STORED) as archive:
    for name in names + (['dataset.json'] if FLAGS.labels else []):
      archive.write(os.path.join(folder, name), name)
  return path


def cold_pass(workdir: str) -> tuple[float, image_sources.Dataset]:
  """Images/s of preparing the folder or zip into the cache, and the prepared images
  [N, 64, 64, 3] with their one-hot labels [N, 10] (None without --labels)."""
  folder = os.path.join(workdir, 'faces')
  os.makedirs(folder)
  names = write_faces(folder, FLAGS.images)
  path = zipped(folder, names) if FLAGS.source == 'zip' else folder
  config = celeba.get_config()
  config.data.update(source=FLAGS.source, path=path, cache_dir=os.path.join(workdir, 'cache'),
                     labels='dataset_json' if FLAGS.labels else 'none')
  start = time.perf_counter()
  image_shape = (config.model.resolution, config.model.resolution, config.model.channels)
  prepared = image_sources.prepare_source(config.data, image_shape)
  rate = FLAGS.images / (time.perf_counter() - start)
  labels = None if prepared.labels is None else image_sources.model_labels(prepared.labels)
  return rate, image_sources.Dataset(prepared.images, labels)


def tiled_cache(workdir: str, images: np.ndarray) -> np.ndarray:
  """A read-only memmapped .npy of `--cached_images` images, repeating `images`."""
  path = os.path.join(workdir, 'tiled.npy')
  tiled = np.lib.format.open_memmap(path, mode='w+', dtype=np.uint8,
                                    shape=(FLAGS.cached_images,) + images.shape[1:])
  for start in range(0, len(tiled), len(images)):
    tiled[start:start + len(images)] = images[:len(tiled) - start]
  tiled.flush()
  return np.load(path, mmap_mode='r')


def cached_pass(dataset, mesh, batch_size: int, start_step: int, prefetch_size: int) -> float:
  """Images/s of `--steps` global batches (with their labels if any), each ready on the device."""
  batches = input_pipeline.global_batches(dataset.images, mesh, seed=0, start_step=start_step,
                                          batch_size=batch_size, d_steps=1,
                                          prefetch_size=prefetch_size, labels=dataset.labels)
  jax.block_until_ready(next(batches))  # the thread is running and the queue has begun to fill
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    jax.block_until_ready(next(batches))
  seconds = time.perf_counter() - start
  batches.close()
  return FLAGS.steps * batch_size / seconds


def waits(dataset, mesh, batch_size: int, prefetch_size: int) -> np.ndarray:
  """Seconds that a `--consumer_rate` consumer spends in each next(batches), [--steps]."""
  step_seconds = batch_size / FLAGS.consumer_rate
  batches = input_pipeline.global_batches(dataset.images, mesh, seed=0, start_step=0,
                                          batch_size=batch_size, d_steps=1,
                                          prefetch_size=prefetch_size, labels=dataset.labels)
  next(batches)
  seconds = np.empty(FLAGS.steps)
  for i in range(FLAGS.steps):
    start = time.perf_counter()
    jax.block_until_ready(next(batches))
    seconds[i] = time.perf_counter() - start
    time.sleep(step_seconds)  # the device computing the step, leaving the host free
  batches.close()
  return seconds


def main(argv):
  del argv
  prefetch_size = celeba.get_config().data.prefetch
  mesh = parallel.make_mesh()
  with tempfile.TemporaryDirectory() as workdir:
    cold, prepared = cold_pass(workdir)
    print(f'cold pass: {FLAGS.images} 178x218 JPEGs from a {FLAGS.source}'
          f'{" with labels" if FLAGS.labels else ""} -> crop 140 -> 64x64 cache: '
          f'{cold:,.0f} images/s ({os.cpu_count()} CPU cores)')
    tiled_labels = (None if prepared.labels is None else
                    np.resize(prepared.labels, (FLAGS.cached_images, prepared.labels.shape[1])))
    cache = image_sources.Dataset(tiled_cache(workdir, prepared.images), tiled_labels)
    print(f'cached passes over {len(cache.images):,} 64x64 images, {FLAGS.steps} batches each, '
          f'median of {FLAGS.passes} (prefetch {prefetch_size}):')
    for batch_size in BATCH_SIZES:
      rates = [cached_pass(cache, mesh, batch_size, i * FLAGS.steps, prefetch_size)
               for i in range(FLAGS.passes)]
      print(f'  batch {batch_size}: {statistics.median(rates):,.0f} images/s '
            f'(min {min(rates):,.0f}, max {max(rates):,.0f})')
    print(f'a step that takes {FLAGS.consumer_rate:,} images/s, time in next(batches):')
    for batch_size in BATCH_SIZES:
      seconds = waits(cache, mesh, batch_size, prefetch_size)
      share = seconds.mean() / (seconds.mean() + batch_size / FLAGS.consumer_rate)
      print(f'  batch {batch_size}: median {1e6 * np.median(seconds):.0f} us, mean '
            f'{1e6 * seconds.mean():.0f} us ({100 * share:.1f}% of the step)')


if __name__ == '__main__':
  app.run(main)
