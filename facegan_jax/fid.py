"""FID and KID of a generator against the training images, with cached reference features.

Both sides go through the same path: uint8 images [B, H, W, C] (generated ones are quantised
exactly as a saved PNG is, see `images.quantize`) -> bicubic resize to 299 -> FID Inception pool3
features, jitted, with the batch sharded over the mesh's 'data' axis. Generated images come from
fixed latents (the config seed's `generation.EVAL_STREAM`), so one state always gets the same
numbers.

The real side is the first min(config.eval.num_samples, N) training images. Their features are
computed once and cached in config.eval.stats_dir as an .npz named by data source, split,
resolution, channels and count, plus a digest of the images' bytes and of the Inception weights,
so a cache is never reused for other images or another network.
"""

import functools
import hashlib
import os
import time
import uuid
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec

from facegan_jax import distances
from facegan_jax import generation
from facegan_jax import images as images_lib
from facegan_jax import inception
from facegan_jax import parallel
from facegan_jax.errors import UserError
from facegan_jax.errors import check_at_least


def check_eval_config(eval_config: ml_collections.ConfigDict, num_devices: int):
  """Raises UserError naming the first bad field of `config.eval`."""
  if eval_config.every < 0:
    raise UserError(f'config.eval.every={eval_config.every} must be 0 (off) or more.')
  for field, minimum in (('num_samples', 2), ('kid_subsets', 1), ('kid_subset_size', 2)):
    check_at_least({'eval': eval_config}, f'eval.{field}', minimum)
  parallel.check_batch_size(eval_config.batch_size, num_devices, 'eval.batch_size')


def _rows_sharding(mesh):
  return NamedSharding(mesh, PartitionSpec(parallel.DATA_AXIS))


def _global(rows: np.ndarray, mesh) -> jax.Array:
  """A host array that every process holds whole -> a global array sharded along rows."""
  return jax.make_array_from_callback(rows.shape, _rows_sharding(mesh), lambda index: rows[index])


def _padded_batches(rows: np.ndarray, batch_size: int):
  """Yields (batch [batch_size, ...], number of real rows); the last batch is zero-padded."""
  for start in range(0, len(rows), batch_size):
    batch = rows[start:start + batch_size]
    count = len(batch)
    if count < batch_size:
      batch = np.concatenate([batch, np.zeros((batch_size - count,) + batch.shape[1:],
                                              batch.dtype)])
    yield batch, count


@functools.cache
def _feature_functions(width_multiplier: float, mesh):
  """Jitted (image features, generator features), built once per network width and mesh."""
  network = inception.FIDInceptionV3(width_multiplier)
  replicated = parallel.replicated(mesh)

  def features(variables, images):
    return network.apply(variables, inception.preprocess(images))

  def generated_features(variables, generate, state, latents):
    return features(variables, images_lib.quantize(generate(state, latents)))

  return (jax.jit(features, out_shardings=replicated),
          jax.jit(generated_features, static_argnums=1, out_shardings=replicated))


class FeatureExtractor:
  """Pool3 features of image batches and of generator outputs, jitted over a mesh.

  Construction checks `config.eval` and loads the weights: UserError if they are missing.
  """

  def __init__(self, eval_config: ml_collections.ConfigDict, mesh):
    check_eval_config(eval_config, mesh.devices.size)
    variables, self.fingerprint = inception.load(eval_config.inception_weights,
                                                 eval_config.inception_width_multiplier)
    self.variables = jax.device_put(variables, parallel.replicated(mesh))
    self.batch_size, self.mesh = eval_config.batch_size, mesh
    self._image_features, self._generated_features = _feature_functions(
        eval_config.inception_width_multiplier, mesh)

  def of_images(self, images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, C] (identical on every process) -> features [N, D] float32."""
    return np.concatenate([
        np.asarray(self._image_features(self.variables, _global(batch, self.mesh)))[:count]
        for batch, count in _padded_batches(images, self.batch_size)])

  def of_generator(self, generate: Callable, state: Any, latents: np.ndarray) -> np.ndarray:
    """Features [N, D] of generate(state, latents [N, latent_dim]) -> images in [-1, 1]."""
    return np.concatenate([
        np.asarray(self._generated_features(self.variables, generate, state,
                                            _global(batch, self.mesh)))[:count]
        for batch, count in _padded_batches(latents, self.batch_size)])


def _reference_path(config: ml_collections.ConfigDict, images: np.ndarray,
                    weights_fingerprint: str) -> str:
  digest = hashlib.sha256(weights_fingerprint.encode())
  digest.update(str(images.shape).encode())
  digest.update(np.ascontiguousarray(images).data)
  height, width, channels = images.shape[1:]
  name = (f'{config.data.source}-{config.data.split}-{height}x{width}x{channels}-'
          f'{len(images)}-{digest.hexdigest()[:16]}.npz')
  return os.path.join(os.path.expanduser(config.eval.stats_dir), name)


def reference_features(config: ml_collections.ConfigDict, images: np.ndarray,
                       extractor: FeatureExtractor) -> np.ndarray:
  """Features [n, D] of the first n = min(config.eval.num_samples, N) of `images`, cached.

  Process 0 writes the cache (under a temporary name, then renamed, so a reader never sees a
  partial file); every process reads it or computes the same features.
  """
  images = images[:config.eval.num_samples]
  path = _reference_path(config, images, extractor.fingerprint)
  if os.path.isfile(path):
    with np.load(path) as cached:
      logging.info('Read reference features of %d images from %s.', len(images), path)
      return cached['features']
  start = time.perf_counter()
  features = extractor.of_images(images)
  logging.info('Computed reference features of %d images in %.1f s.', len(images),
               time.perf_counter() - start)
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f'{path}.tmp-{uuid.uuid4().hex}.npz'
    np.savez(temporary, features=features)
    os.replace(temporary, path)
    logging.info('Cached them in %s.', path)
  return features


def eval_latents(config: ml_collections.ConfigDict) -> np.ndarray:
  """The fixed latents of evaluation: [config.eval.num_samples, latent_dim] float32."""
  key = generation.stream_key(config.seed, generation.EVAL_STREAM)
  return np.asarray(generation.latents(key, config.eval.num_samples, config.model.latent_dim))


def scores(config: ml_collections.ConfigDict, real: np.ndarray, fake: np.ndarray) -> dict:
  """{'fid', 'kid'} between feature sets [N, D] and [M, D]."""
  return {'fid': distances.features_frechet_distance(real, fake),
          'kid': distances.kernel_inception_distance(
              real, fake, config.eval.kid_subsets, config.eval.kid_subset_size, config.seed)}


class Evaluator:
  """FID and KID of a generator state against the training images.

  Built once (computes or reads the reference features); then `evaluator(state)` ->
  {'fid': float, 'kid': float}, the same on every process.
  """

  def __init__(self, config: ml_collections.ConfigDict, generate: Callable,
               extractor: FeatureExtractor, real_images: np.ndarray):
    """`generate(state, latents [B, latent_dim]) -> images [B, H, W, C] in [-1, 1]` is jitted
    inside the feature function; `real_images` [N, H, W, C] uint8 are the training images."""
    self.config, self.generate, self.extractor = config, generate, extractor
    self.real = reference_features(config, real_images, self.extractor)
    self.latents = eval_latents(config)

  def __call__(self, state) -> dict:
    start = time.perf_counter()
    fake = self.extractor.of_generator(self.generate, state, self.latents)
    result = scores(self.config, self.real, fake)
    logging.info('FID/KID of %d generated vs %d real images took %.1f s.', len(fake),
                 len(self.real), time.perf_counter() - start)
    return result
