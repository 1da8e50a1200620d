"""Sampling a run conditioned on CelebA attributes (TFDS's mock CelebA): `sample --attributes`
sets the named attributes on or off and draws the rest from the training labels, a grid row per
setting; bad settings are one-line errors."""

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from configs import celeba
from facegan_jax.data import image_sources
from facegan_jax.sampling import generation
from facegan_jax.sampling import labels as labels_lib
from facegan_jax.system.errors import UserError
from facegan_jax.training import loop
from tests.helpers import multidevice

NAMES = ('Smiling', 'Eyeglasses', 'Male')


@pytest.fixture(scope='module')
def attribute_run(tmp_path_factory):
  """(workdir, training labels [16, 3]) of one step of a DCGAN on mock CelebA's attributes."""
  path = tmp_path_factory.mktemp('attributes')
  config = celeba.get_config('test')
  config.data.update(data_dir=str(path / 'tfds'), cache_dir=str(path / 'cache'),
                     max_examples=16, labels='celeba_attributes', attributes=','.join(NAMES))
  config.model.c_dim = len(NAMES)
  config.train.num_steps = 1
  with tfds.testing.mock_data(num_examples=16):
    loop.train_and_evaluate(config, str(path / 'run'))
  # Read back from the cache, as `sample` reads them (no TFDS outside mock_data).
  return str(path / 'run'), image_sources.load_dataset(config).labels


def test_attribute_settings_set_their_columns_and_draw_the_rest(attribute_run):
  workdir, training = attribute_run
  assert 0 < training.sum() < training.size  # both values occur
  restored = generation.RestoredGenerator(workdir)
  latents, labels, columns = labels_lib.grid_inputs(
      restored, 12, 3, None, ['Smiling,-Male', 'Eyeglasses'])
  assert columns == 6 and labels.shape == (12, 3)
  np.testing.assert_array_equal(latents[:6], latents[6:])
  np.testing.assert_array_equal(latents[:6], restored.seed_latents(3, 6))
  first, second = labels[:6], labels[6:]
  assert (first[:, 0] == 1).all() and (first[:, 2] == 0).all() and (second[:, 1] == 1).all()
  # The unnamed columns are one draw of training rows, shared by both settings.
  drawn = generation.draw_labels(jax.random.fold_in(jax.random.key(3), 1), training, 6)
  assert set(map(tuple, drawn.tolist())) <= set(map(tuple, training.tolist()))
  np.testing.assert_array_equal(first[:, 1], drawn[:, 1])
  np.testing.assert_array_equal(second[:, [0, 2]], drawn[:, [0, 2]])
  assert restored.label.tolist() == first[0].tolist()
  # The settings reach the images.
  images = restored.images(latents, labels)
  assert not np.array_equal(images[:6], images[6:])


@pytest.mark.parametrize('classes, settings, message', [
    (None, ['Glasses'], r"^--attributes=Glasses: 'Glasses' is not an attribute of this run; use "
                        r'names of Smiling, Eyeglasses, Male, a leading minus to turn one off.$'),
    (None, ['Smiling,-Smiling'], r'^--attributes=Smiling,-Smiling names Smiling twice; name each '
                                 r'attribute once.$'),
    ([1], None, r'^--class=1: this run is conditioned on CelebA attributes, not classes; use '
                r'--attributes=NAME,-NAME'),
])
def test_bad_attribute_settings_are_one_line(attribute_run, classes, settings, message):
  restored = generation.RestoredGenerator(attribute_run[0])
  with pytest.raises(UserError, match=message):
    labels_lib.grid_inputs(restored, 4, 0, classes, settings)


@pytest.mark.slow
def test_the_sample_command_writes_a_row_per_setting_byte_identically(attribute_run, tmp_path):
  workdir, _ = attribute_run
  outputs = []
  for name in ('a', 'b'):
    result = multidevice.run_python(['-m', 'facegan_jax.sample', f'--workdir={workdir}',
                                     '--num=8', '--attributes=Smiling,-Male',
                                     '--attributes=-Smiling,Eyeglasses',
                                     f'--out={tmp_path / name}.png'])
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Wrote' in result.stdout and 'labels drawn from the training labels' in result.stdout
    outputs.append((tmp_path / f'{name}.png').read_bytes())
  assert outputs[0] == outputs[1]
  grid = np.asarray(Image.open(tmp_path / 'a.png'))
  assert grid.shape[:2] == (2 * 18 + 2, 4 * 18 + 2)  # 2 settings x 4 samples of 16x16
  result = multidevice.run_python(['-m', 'facegan_jax.sample', f'--workdir={workdir}',
                                   '--attributes=Bald', f'--out={tmp_path / "c"}.png'])
  assert result.returncode != 0 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].endswith(
      "'Bald' is not an attribute of this run; use names of Smiling, Eyeglasses, Male, a "
      'leading minus to turn one off.')
