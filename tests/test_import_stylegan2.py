"""The import command on NVIDIA's network pickles: the run's config from the file (no --config),
a --config that disagrees refused with one line, and `sample`, `evaluate` and `main` on the
imported run as on any, in processes where torch cannot be imported."""

import json
import shlex

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import ffhq
from facegan_jax.data import images as images_lib
from facegan_jax.pretrained import convert_stylegan2
from facegan_jax.sampling import generation
from facegan_jax.sampling import labels
from facegan_jax.system.errors import UserError
from tests.conftest import TINY
from tests.helpers import multidevice
from tests.helpers import reference_arrays
from tests.test_nvidia_pickle import path
from tests.test_stylegan2_train import WITHOUT_TORCH


def run_without_torch(module, *args):
  return multidevice.run_python(['-c', WITHOUT_TORCH, f'facegan_jax.{module}', *args])


def import_command(weights, workdir, *args):
  """Runs the import command of `weights` into `workdir` (torch unimportable; `args` more flags)
  and returns the `main` command it prints to fine-tune the run, split into its words."""
  imported = run_without_torch('import_stylegan2', f'--weights={weights}', f'--workdir={workdir}',
                               *args)
  assert imported.returncode == 0, imported.stderr[-3000:]
  return shlex.split(imported.stdout.split('fine-tune it with ')[1].split(' (to train')[0])


def faces(directory, count=8, size=32):
  """A folder of random RGB PNGs to evaluate and fine-tune on."""
  directory.mkdir()
  for index, image in enumerate(np.random.default_rng(0).integers(0, 256, (count, size, size, 3))):
    Image.fromarray(image.astype(np.uint8)).save(directory / f'{index}.png')
  return directory


@pytest.mark.slow
def test_a_pickle_becomes_a_run_to_sample_evaluate_and_fine_tune(tmp_path, tiny_weights):
  workdir = tmp_path / 'run'
  data = [f'--config.data.path={faces(tmp_path / "faces")}',
          f'--config.data.cache_dir={tmp_path / "cache"}', '--config.eval.kid_subsets=2',
          '--config.eval.kid_subset_size=8', f'--config.eval.inception_width_multiplier={TINY}',
          # a step without the regularisers, on a small batch, compiles and runs in less time
          '--config.loss.r1_gamma=0.0', '--config.loss.pl_weight=0.0',
          '--config.train.batch_size=8', '--config.samples.count=4']
  command = import_command(path('sg3_stylegan2_res32'), workdir, *data)
  # The model is the file's; the training recipe configs/ffhq.py's config F.
  assert command[:4] == ['python', '-m', 'facegan_jax.main', '--config=configs/ffhq.py:stylegan2']
  assert sorted(command[4:]) == sorted(data + [
      '--config.model.resolution=32', '--config.model.latent_dim=64', '--config.model.w_dim=64',
      '--config.model.channel_base=512', '--config.model.channel_max=32',
      '--config.model.mapping_layers=2', '--config.model.conv_clamp=256.0',
      f'--workdir={workdir}'])

  sampled = run_without_torch('sample', f'--workdir={workdir}', '--num=4',
                              f'--out={tmp_path / "grid.png"}')
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  assert Image.open(tmp_path / 'grid.png').size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)
  expected = reference_arrays.load('nvidia_pkl/expected_outputs.npz')
  ours = generation.RestoredGenerator(str(workdir)).images(
      jnp.asarray(expected['sg3_stylegan2_res32/z']))
  reference = images_lib.to_uint8(
      expected['sg3_stylegan2_res32/G_ema_img_psi1'].transpose(0, 2, 3, 1))
  assert np.abs(ours.astype(int) - reference).max() <= 1

  evaluated = run_without_torch('evaluate', f'--workdir={workdir}', '--num_samples=8',
                                f'--inception_weights={tiny_weights}')
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  scores = json.loads((workdir / 'eval' / 'step_0000000-clean-n8.json').read_text())
  assert scores['step'] == 0 and scores['num_real'] == 8 and np.isfinite(scores['fid'])

  trained = multidevice.run_python(
      ['-c', WITHOUT_TORCH, *command[2:], '--config.train.num_steps=1'])
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert 'Resumed from the checkpoint of step 0' in trained.stderr
  assert (workdir / 'samples' / 'step_0000001.png').exists()


def import_without_config(weights, workdir):
  """The import command's run of a pickle without --config, in this process."""
  config = ffhq.get_config('stylegan2')
  convert_stylegan2.set_model_from_file(config, weights)
  convert_stylegan2.write_workdir(config, weights, str(workdir))
  return config


def refusal(function, *args):
  with pytest.raises(UserError) as error:
    function(*args)
  assert '\n' not in str(error.value)
  return str(error.value)


@pytest.mark.slow
def test_a_conditional_run_samples_the_class_asked_for(tmp_path):
  workdir = tmp_path / 'run'
  config = import_without_config(path('sg3_stylegan2_res32_cond4'), workdir)
  assert config.model.c_dim == 4
  # The fixture's latents z[k] come with the one-hot label of class k.
  expected = reference_arrays.load('nvidia_pkl/expected_outputs.npz')
  z = jnp.asarray(expected['sg3_stylegan2_res32_cond4/z'])
  reference = images_lib.to_uint8(
      expected['sg3_stylegan2_res32_cond4/G_ema_img_psi07'].transpose(0, 2, 3, 1))
  restored = generation.RestoredGenerator(str(workdir), truncation=0.7)
  for k in (0, 3):
    ours = restored.images(z[k:k + 1], np.eye(4, dtype=np.float32)[[k]])
    assert np.abs(ours.astype(int) - reference[k:k + 1]).max() <= 1

  sampled = run_without_torch('sample', f'--workdir={workdir}', '--num=4', '--class=2',
                              f'--out={tmp_path / "grid.png"}')
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  assert Image.open(tmp_path / 'grid.png').size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)
  assert refusal(labels.class_rows, [2, 4], restored.config) == (
      '--class=4 is not a class of this run; use 0 to 3.')
  assert refusal(restored.images, z[:1]) == (
      'this run is conditional (config.model.c_dim=4): give the labels of the images to '
      'generate.')


@pytest.mark.slow
def test_class_on_an_unconditional_run_is_refused(tmp_path):
  import_without_config(path('sg3_stylegan2_res32'), tmp_path)
  config = generation.RestoredGenerator(str(tmp_path)).config
  assert refusal(labels.class_rows, [0], config) == (
      '--class=0 needs a conditional run; this one is unconditional (config.model.c_dim=0): '
      'leave --class out.')


@pytest.mark.slow
def test_a_config_that_disagrees_with_the_pickle_is_one_line_naming_both_values(tmp_path):
  result = run_without_torch('import_stylegan2', f'--weights={path("sg3_stylegan2_res64")}',
                             '--config=configs/ffhq.py', f'--workdir={tmp_path}')
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].endswith(
      f'config.model.resolution=256, but {path("sg3_stylegan2_res64")} holds a network built '
      'with 64; set --config.model.resolution=64.')
  # Without --config, a model field given on the command line is checked the same way.
  result = run_without_torch('import_stylegan2', f'--weights={path("sg3_stylegan2_res64")}',
                             '--config.model.w_dim=128', f'--workdir={tmp_path}')
  assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].endswith(
      f'config.model.w_dim=128, but {path("sg3_stylegan2_res64")} holds a network built with '
      '64; set --config.model.w_dim=64.')
  assert not (tmp_path / 'checkpoints').exists()
