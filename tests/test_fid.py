"""FID/KID of a generator end to end, on a tiny random Inception and tiny image sets."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import lfw_demo
from facegan_jax import fid
from facegan_jax import image_sources
from facegan_jax import inception
from facegan_jax import parallel
from facegan_jax import train
from facegan_jax.errors import UserError
from tests.conftest import TINY


def eval_config(tiny_weights, stats_dir):
  config = lfw_demo.get_config('test')
  config.eval.inception_weights = tiny_weights
  config.eval.inception_width_multiplier = TINY
  config.eval.stats_dir = str(stats_dir)
  config.eval.num_samples = 40
  config.eval.batch_size = 16
  config.eval.kid_subsets = 5
  config.eval.kid_subset_size = 20
  return config


def make_evaluator(config):
  trainer = train.make_trainer(config)
  extractor = fid.FeatureExtractor(config.eval, parallel.make_mesh())
  images = image_sources.load_images(config)
  evaluator = fid.Evaluator(config, functools.partial(train.generate_samples, trainer), extractor,
                            images)
  state = train.create_train_state(trainer, jax.random.key(config.seed), images.shape[1:])
  return evaluator, state, images


def test_evaluation_runs_end_to_end_and_repeats_exactly(tiny_weights, tmp_path):
  config = eval_config(tiny_weights, tmp_path)
  evaluator, state, images = make_evaluator(config)
  first = evaluator(state)
  assert set(first) == {'fid', 'kid'} and np.isfinite(list(first.values())).all()
  assert first['fid'] > 0
  (cache,) = tmp_path.iterdir()
  assert cache.name.startswith('lfw_subset-train-32x32x1-40-') and cache.suffix == '.npz'
  again, _, _ = make_evaluator(config)  # reads the reference features back from the cache
  np.testing.assert_array_equal(again.real, evaluator.real)
  assert again(state) == first
  # The real images against themselves, through the same features: zero.
  assert abs(fid.scores(config, evaluator.real, evaluator.real)['fid']) < 1e-6
  # An untrained generator is much farther from the faces than other faces are.
  halves = fid.scores(config, evaluator.extractor.of_images(images[:50]),
                      evaluator.extractor.of_images(images[50:]))
  assert halves['fid'] < first['fid'] and halves['kid'] < first['kid']


def test_evaluation_follows_the_state(tiny_weights, tmp_path):
  # An untrained DCGAN draws near-constant gray, which the tiny random network maps to one
  # feature vector; this generator's images visibly depend on the state (a contrast).
  def generate(contrast, latents):
    return jnp.tanh(contrast * latents[:, :32 * 32].reshape(-1, 32, 32, 1))

  config = eval_config(tiny_weights, tmp_path)
  config.model.latent_dim = 32 * 32
  extractor = fid.FeatureExtractor(config.eval, parallel.make_mesh())
  evaluator = fid.Evaluator(config, generate, extractor, image_sources.load_images(config))
  low, high = evaluator(jnp.float32(0.2)), evaluator(jnp.float32(2.0))
  assert low != high and evaluator(jnp.float32(0.2)) == low


def test_features_do_not_depend_on_batching(tiny_weights, tmp_path):
  config = eval_config(tiny_weights, tmp_path)
  extractor = fid.FeatureExtractor(config.eval, parallel.make_mesh())
  images = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 1), np.uint8)
  every = extractor.of_images(images)  # a full batch of 16 and a padded one of 4
  assert every.shape == (20, 256)
  np.testing.assert_allclose(extractor.of_images(images[16:]), every[16:], rtol=1e-5, atol=1e-5)


def test_reference_cache_is_keyed_by_the_images(tiny_weights, tmp_path):
  config = eval_config(tiny_weights, tmp_path)
  extractor = fid.FeatureExtractor(config.eval, parallel.make_mesh())
  images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 1), np.uint8)
  fid.reference_features(config, images, extractor)
  other = images.copy()
  other[0, 0, 0, 0] ^= 1
  fid.reference_features(config, other, extractor)
  config.eval.num_samples = 30
  fid.reference_features(config, images, extractor)
  assert len(list(tmp_path.iterdir())) == 3


@pytest.mark.parametrize('field, value, message', [
    ('batch_size', 0, 'config.eval.batch_size=0 does not split over 1 devices'),
    ('num_samples', 1, 'config.eval.num_samples=1 must be at least 2.'),
    ('every', -1, 'config.eval.every=-1 must be 0 (off) or more.'),
])
def test_bad_eval_values_are_clear_errors(tiny_weights, field, value, message):
  config = lfw_demo.get_config('test')
  config.eval.inception_weights = tiny_weights  # checked first: the values are the mistake
  config.eval[field] = value
  with pytest.raises(UserError, match=message.replace('(', r'\(').replace(')', r'\)')):
    fid.FeatureExtractor(config.eval, parallel.make_mesh())


def test_missing_weights_name_the_config_field_and_the_download(tmp_path):
  config = lfw_demo.get_config('test')
  config.eval.inception_weights = str(tmp_path / 'missing.npz')
  with pytest.raises(UserError, match='config.eval.inception_weights=.*missing.npz.* is not a '
                     'file; download https://github.com/mseitzer/pytorch-fid'):
    fid.FeatureExtractor(config.eval, parallel.make_mesh())
