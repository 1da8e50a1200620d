"""FID, KID and the k-NN measures of a generator against the training images.

Both sides go through the same path: uint8 images [B, H, W, C] (generated ones are quantised
exactly as a saved PNG is, see `images.quantize`) -> resize to 299 by the protocol ('clean' or
'legacy_tf', see inception.resize) -> FID Inception pool3 features, jitted, with the batch
sharded over the mesh's 'data' axis. Generated images come from fixed latents (the config
seed's `generation.EVAL_STREAM`), so one state always gets the same numbers. FID, KID,
precision, recall, density and coverage all come from these one set of features per side.

The real side is the first min(config.eval.num_samples, N) training images. Their features are
computed once and cached in config.eval.stats_dir as an .npz named by data source, split,
resolution, channels, count and protocol, plus a digest of the images' bytes and of the
Inception weights, so a cache is never reused for other images, resizing or network.

`make_extractor` and `make_evaluator` read the config; everything below them takes values.
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

from facegan_jax.data import images as images_lib
from facegan_jax.metrics import distances
from facegan_jax.metrics import inception
from facegan_jax.sampling import generation
from facegan_jax.system import parallel
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import check_at_least


def check_eval_config(eval_config: ml_collections.ConfigDict, num_devices: int):
  """Raises UserError naming the first bad field of `config.eval`."""
  if eval_config.every < 0:
    raise UserError(f'config.eval.every={eval_config.every} must be 0 (off) or more.')
  if eval_config.protocol not in inception.PROTOCOLS:
    raise UserError(f'config.eval.protocol={eval_config.protocol!r} is not one of '
                    f'{", ".join(map(repr, inception.PROTOCOLS))}.')
  for field, minimum in (('kid_subsets', 1), ('kid_subset_size', 2), ('precision_recall_k', 1),
                         ('density_coverage_k', 1)):
    check_at_least({'eval': eval_config}, f'eval.{field}', minimum)
  # The k-NN measures need more than k points on each side.
  check_at_least({'eval': eval_config}, 'eval.num_samples',
                 max(eval_config.precision_recall_k, eval_config.density_coverage_k) + 1)
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
def _feature_functions(width_multiplier: float, protocol: str, mesh):
  """Jitted (image features, generator features), built once per width, protocol and mesh."""
  network = inception.FIDInceptionV3(width_multiplier)
  replicated = parallel.replicated(mesh)

  def features(variables, images):
    return network.apply(variables, inception.preprocess(images, protocol))

  def generated_features(variables, generate, state, latents):
    return features(variables, images_lib.quantize(generate(state, latents)))

  return (jax.jit(features, out_shardings=replicated),
          jax.jit(generated_features, static_argnums=1, out_shardings=replicated))


class FeatureExtractor:
  """Pool3 features of image batches and of generator outputs, jitted over a mesh.

  Construction loads the weights: UserError if they are missing or do not fit.
  `digest` names the weights (inception.weights_digest), `protocol` the resizing.
  """

  def __init__(self, weights: str, *, width_multiplier: float, protocol: str, batch_size: int,
               mesh):
    variables, self.digest = inception.load(weights, width_multiplier)
    self.variables = jax.device_put(variables, parallel.replicated(mesh))
    self.protocol, self.batch_size, self.mesh = protocol, batch_size, mesh
    self._image_features, self._generated_features = _feature_functions(
        width_multiplier, protocol, mesh)

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


def make_extractor(eval_config: ml_collections.ConfigDict, mesh) -> FeatureExtractor:
  """Checks `config.eval` and builds its FeatureExtractor: UserError naming a bad field."""
  check_eval_config(eval_config, mesh.devices.size)
  return FeatureExtractor(eval_config.inception_weights,
                          width_multiplier=eval_config.inception_width_multiplier,
                          protocol=eval_config.protocol, batch_size=eval_config.batch_size,
                          mesh=mesh)


def _reference_path(stats_dir: str, name: str, images: np.ndarray,
                    extractor: FeatureExtractor) -> str:
  digest = hashlib.sha256(f'{extractor.digest}-{extractor.protocol}'.encode())
  digest.update(str(images.shape).encode())
  digest.update(np.ascontiguousarray(images).data)
  height, width, channels = images.shape[1:]
  filename = (f'{name}-{height}x{width}x{channels}-{len(images)}-{extractor.protocol}-'
              f'{digest.hexdigest()[:16]}.npz')
  return os.path.join(os.path.expanduser(stats_dir), filename)


def reference_features(images: np.ndarray, extractor: FeatureExtractor, stats_dir: str,
                       name: str) -> np.ndarray:
  """Features [N, D] of `images` [N, H, W, C] uint8, cached in `stats_dir` under `name`.

  Process 0 writes the cache (under a temporary name, then renamed, so a reader never sees a
  partial file); every process reads it or computes the same features.
  """
  path = _reference_path(stats_dir, name, images, extractor)
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


def eval_latents(seed: int, num_samples: int, latent_dim: int) -> np.ndarray:
  """The fixed latents of evaluation: [num_samples, latent_dim] float32."""
  key = generation.stream_key(seed, generation.EVAL_STREAM)
  return np.asarray(generation.latents(key, num_samples, latent_dim))


def scores(real: np.ndarray, fake: np.ndarray, *, kid_subsets: int, kid_subset_size: int,
           seed: int, precision_recall_k: int, density_coverage_k: int) -> dict:
  """{'fid', 'kid', 'precision', 'recall', 'density', 'coverage'} of features [M, D] of
  generated images against features [N, D] of real ones (see distances)."""
  return {'fid': distances.features_frechet_distance(real, fake),
          'kid': distances.kernel_inception_distance(real, fake, kid_subsets, kid_subset_size,
                                                     seed),
          **distances.nearest_neighbour_measures(real, fake, precision_recall_k,
                                                 density_coverage_k)}


def describe(context: dict) -> str:
  """'clean protocol, 10000 generated vs 10000 real celeb_a train images, Inception D'."""
  return (f'{context["protocol"]} protocol, {context["num_generated"]} generated vs '
          f'{context["num_real"]} real {context["source"]} {context["split"]} images, '
          f'Inception {context["inception"]}')


class Evaluator:
  """FID, KID and the k-NN measures of a generator state against fixed real features.

  `evaluator(state)` -> {'fid', 'kid', 'precision', 'recall', 'density', 'coverage'}: floats,
  the same on every process. `context` says what they were computed on: protocol, counts,
  data source and split, Inception digest; it is written with every result.
  """

  def __init__(self, generate: Callable, extractor: FeatureExtractor, real: np.ndarray,
               latents: np.ndarray, score: Callable, data_source: str, data_split: str):
    """`generate(state, latents [B, latent_dim]) -> images [B, H, W, C] in [-1, 1]` is jitted
    inside the feature function; `real` [N, D] are the real images' features; `score(real,
    fake)` -> the dict of floats."""
    self.generate, self.extractor, self.real, self.latents = generate, extractor, real, latents
    self.score = score
    self.context = {'protocol': extractor.protocol, 'num_generated': len(latents),
                    'num_real': len(real), 'source': data_source, 'split': data_split,
                    'inception': extractor.digest}

  def __call__(self, state) -> dict:
    start = time.perf_counter()
    fake = self.extractor.of_generator(self.generate, state, self.latents)
    result = self.score(self.real, fake)
    logging.info('Evaluation (%s) took %.1f s.', describe(self.context),
                 time.perf_counter() - start)
    return result


def _generate_conditional(generate: Callable, latent_dim: int, state, latents_and_labels):
  """generate(state, z, labels=c) of rows [z, c]: labels ride with their latents in batches."""
  return generate(state, latents_and_labels[:, :latent_dim],
                  labels=latents_and_labels[:, latent_dim:])


def generator_inputs(config: ml_collections.ConfigDict, generate: Callable, count: int,
                     training_labels: np.ndarray | None = None) -> tuple[Callable, np.ndarray]:
  """(generate, inputs [count, ...]) that Evaluator and FeatureExtractor.of_generator feed the
  generator: the fixed evaluation latents, and for a conditional run (`training_labels`
  [N, c_dim]) labels drawn from the training labels (`generation.draw_labels`, from the
  evaluation stream: fixed per seed) riding in the same rows."""
  latents = eval_latents(config.seed, count, config.model.latent_dim)
  if training_labels is None:
    return generate, latents
  labels = generation.draw_labels(
      jax.random.fold_in(generation.stream_key(config.seed, generation.EVAL_STREAM), 1),
      training_labels, count)
  return (functools.partial(_generate_conditional, generate, config.model.latent_dim),
          np.concatenate([latents, labels], axis=1))


def make_evaluator(config: ml_collections.ConfigDict, generate: Callable,
                   extractor: FeatureExtractor, real_images: np.ndarray,
                   training_labels: np.ndarray | None = None) -> Evaluator:
  """The Evaluator of `config` (a checked config.eval, see make_extractor), against the first
  min(config.eval.num_samples, N) of `real_images` [N, H, W, C] uint8 (their features cached).

  A conditional run passes its `training_labels` [N, c_dim] (`generator_inputs`): `generate`
  is then called as generate(state, z, labels=c)."""
  eval_config = config.eval
  real = reference_features(real_images[:eval_config.num_samples], extractor,
                            eval_config.stats_dir, f'{config.data.source}-{config.data.split}')
  generate, latents = generator_inputs(config, generate, eval_config.num_samples,
                                       training_labels)
  score = functools.partial(
      scores, kid_subsets=eval_config.kid_subsets, kid_subset_size=eval_config.kid_subset_size,
      seed=config.seed, precision_recall_k=eval_config.precision_recall_k,
      density_coverage_k=eval_config.density_coverage_k)
  return Evaluator(generate, extractor, real, latents, score, config.data.source,
                   config.data.split)
