"""benchmarks/sample_quality.py: Inception features when the weights are there, pixels if not."""

import numpy as np
import pytest

from benchmarks import sample_quality
from configs import lfw_demo
from facegan_jax.data import image_sources
from facegan_jax.metrics import distances
from facegan_jax.sampling import generation
from facegan_jax.training import loop
from tests.conftest import TINY


@pytest.mark.slow
def test_measures_on_inception_features_with_weights_and_on_pixels_without(tiny_weights,
                                                                           tmp_path):
  config = lfw_demo.get_config('test')
  config.eval.inception_weights = tiny_weights
  config.eval.inception_width_multiplier = TINY
  config.eval.stats_dir = str(tmp_path / 'stats')
  config.eval.batch_size = 8
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(config, workdir)

  inception = sample_quality.quality(workdir, num=12, seed=0, inception_weights='')
  assert inception['space'] == 'inception (clean)' and inception['fid'] > 0
  pixels = sample_quality.quality(workdir, num=12, seed=0,
                                  inception_weights=str(tmp_path / 'absent.npz'))
  assert pixels['space'] == 'pixels' and 'fid' not in pixels
  restored = generation.RestoredGenerator(workdir)
  fake = restored.images(restored.seed_latents(0, 12)).reshape(12, -1) / 255.0
  real = image_sources.load_images(restored.config)
  real = real.reshape(len(real), -1) / 255.0
  expected = distances.nearest_neighbour_measures(real, fake, 3, 5)
  assert {name: pixels[name] for name in expected} == expected
  assert pixels['nn_real_to_real'] == pytest.approx(
      float(distances.nearest_distances(real, real, True).mean()))
  assert np.isfinite(inception['nn_fake_to_real'])
