"""The sampler: grids, single images, interpolations, byte-identical reruns, clear errors."""

import shutil

import numpy as np
import pytest
from PIL import Image

from configs import lfw_demo
from facegan_jax.sampling import generation
from facegan_jax.system.errors import UserError
from facegan_jax.training import loop
from tests.helpers import multidevice
from tests import test_checkpointing


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  path = tmp_path_factory.mktemp('run')
  config = lfw_demo.get_config('test')
  config.checkpoint.every = 2
  loop.train_and_evaluate(config, str(path))
  return path


def run_sample(*flags):
  return multidevice.run_python(['-m', 'facegan_jax.sample', *flags])


def test_cli_writes_grid_images_and_interpolation_byte_identically(workdir, tmp_path):
  outputs = []
  for name in ('a', 'b'):
    out = tmp_path / name
    result = run_sample(f'--workdir={workdir}', '--num=6', '--seed=5', f'--out={out}.png',
                        f'--images_dir={out}', '--interpolate=1,2,3', '--frames=4',
                        f'--interpolation_out={out}_strip.png')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'samples of step 4, seed 5' in result.stdout
    outputs.append([(out.parent / f'{name}.png').read_bytes(),
                    (out.parent / f'{name}_strip.png').read_bytes(),
                    *[p.read_bytes() for p in sorted(out.iterdir())]])
  assert outputs[0] == outputs[1]
  assert len(outputs[0]) == 2 + 6
  grid = np.asarray(Image.open(tmp_path / 'a.png'))
  assert grid.shape == (2 * 34 + 2, 3 * 34 + 2)  # 6 images of 32x32: 2 rows of 3, 2px borders
  strip = np.asarray(Image.open(tmp_path / 'a_strip.png'))
  assert strip.shape == (2 * 34 + 2, 4 * 34 + 2)  # two seed pairs x four frames


def test_restored_generator_matches_the_training_generator_and_other_steps(workdir):
  config = lfw_demo.get_config('test')
  newest = generation.RestoredGenerator(str(workdir))
  older = generation.RestoredGenerator(str(workdir), step=2)
  assert (newest.step, older.step) == (4, 2)
  latents = newest.seed_latents(0, 3)
  assert newest.images(latents).shape == (3, 32, 32, 1)
  assert not np.array_equal(newest.images(latents), older.images(latents))
  assert newest.config.model.to_dict() == config.model.to_dict()


def test_slerp_keeps_end_points():
  a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
  path = np.asarray(generation.slerp(a, b, np.array([0.0, 0.5, 1.0])))
  np.testing.assert_allclose(path[0], a, atol=1e-6)
  np.testing.assert_allclose(path[-1], b, atol=1e-6)


def test_missing_checkpoints_and_steps_are_clear_errors(workdir, tmp_path):
  with pytest.raises(UserError, match=r'no checkpoint in .*checkpoints; train first'):
    generation.RestoredGenerator(str(tmp_path))
  with pytest.raises(UserError, match=r'no checkpoint of step 3 in .*; steps there: 2, 4\.'):
    generation.RestoredGenerator(str(workdir), step=3)
  result = run_sample(f'--workdir={workdir}', '--step=7')
  assert result.returncode != 0 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith('error: no checkpoint of step 7')
  result = run_sample(f'--workdir={workdir}', '--interpolate=1')
  assert result.stderr.strip().splitlines()[-1] == (
      'error: --interpolate=1 needs two or more integer seeds, e.g. --interpolate=0,1.')


@pytest.mark.parametrize('module', ['sample', 'evaluate'])
def test_a_damaged_checkpoint_is_the_same_one_line_as_in_main(workdir, tmp_path, module):
  damaged = tmp_path / 'run'
  shutil.copytree(workdir, damaged)
  test_checkpointing.damage_checkpoint(str(damaged), 4)
  before = test_checkpointing.snapshot(str(damaged))
  result = multidevice.run_python(['-m', f'facegan_jax.{module}', f'--workdir={damaged}',
                                   f'--out={tmp_path / "grid.png"}'] if module == 'sample' else
                                  ['-m', f'facegan_jax.{module}', f'--workdir={damaged}'])
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  line = result.stderr.strip().splitlines()[-1]
  assert line.startswith(f'error: the latest checkpoint in {damaged}/checkpoints/4 cannot be '
                         'read ('), line
  assert line.endswith(f'); to sample from step 2, move it aside: mv {damaged}/checkpoints/4 '
                       f'{damaged}/checkpoints/4.damaged. Nothing was changed in the workdir.')
  assert test_checkpointing.snapshot(str(damaged)) == before
