"""End to end: the real train_and_evaluate on configs/celeba.py:test, offline.

CelebA comes from `tfds.testing.mock_data` (random 218x178 JPEGs through the real TFDS loading
code); the folder source trains on a folder with one corrupt file.
"""

import logging

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import celeba
from facegan_jax.training import loop
from tests import test_image_sources


@pytest.mark.slow
def test_celeba_test_config_trains_on_mock_celeb_a_end_to_end(tmp_path):
  config = celeba.get_config('test')
  config.data.data_dir = str(tmp_path / 'tfds')
  with tfds.testing.mock_data(num_examples=40):
    state = loop.train_and_evaluate(config, str(tmp_path / 'run'))
  assert int(state.step) == config.train.num_steps
  assert (tmp_path / 'run' / 'samples' / 'step_0000004.png').stat().st_size > 100
  caches = list((tmp_path / 'tfds' / 'facegan_jax_cache').glob('celeb_a-*.npy'))
  assert len(caches) == 1 and np.load(caches[0], mmap_mode='r').shape == (32, 16, 16, 3)


@pytest.mark.slow
def test_a_folder_with_a_corrupt_file_trains_and_reports_one_skipped_file(tmp_path, caplog):
  test_image_sources.write_faces(tmp_path / 'faces', 12, size=(64, 48))
  (tmp_path / 'faces' / 'group0' / 'face005.jpg').write_bytes(b'\xff\xd8 cut off')
  config = celeba.get_config('test')
  config.data.update(source='folder', path=str(tmp_path / 'faces'),
                     cache_dir=str(tmp_path / 'cache'))
  with caplog.at_level(logging.INFO):
    state = loop.train_and_evaluate(config, str(tmp_path / 'run'))
  assert int(state.step) == config.train.num_steps
  assert 'Skipped 1 unreadable file(s)' in caplog.text
  (cache,) = (tmp_path / 'cache').glob('folder-*.npy')
  assert np.load(cache, mmap_mode='r').shape == (12, 16, 16, 3)
