"""The command line: the demo writes sample grids; user mistakes are one-line errors, exit 1."""

import jax
import jax.numpy as jnp
import pytest

from facegan_jax.system import errors
from tests.helpers import multidevice


def run_main(*flags, devices=1):
  return multidevice.run_python(['-m', 'facegan_jax.main', *flags], devices=devices)


def assert_user_error(result, message):
  assert result.returncode != 0
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == f'error: {message}'


@pytest.mark.slow
def test_demo_test_variant_writes_sample_grids(tmp_path):
  result = run_main('--config=configs/lfw_demo.py:test', f'--workdir={tmp_path}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert (tmp_path / 'samples' / 'step_0000004.png').stat().st_size > 100
  assert 'step 4/4' in result.stderr and 'img/s' in result.stderr and 'ETA' in result.stderr


@pytest.mark.parametrize('override, message', [
    ('--config.model.resolution=48',
     'config.model.resolution=48 is not supported; use a power of two from 16 to 256 '
     '(16, 32, 64, 128, 256).'),
    ('--config.loss.generator=hinge2',
     "config.loss.generator='hinge2' is unknown; use one of "
     "['hinge', 'minimax', 'non_saturating']."),
    ('--config.data.source=mnist',
     "config.data.source='mnist' is unknown; use one of ('toy2x2', 'lfw_subset', 'celeb_a', "
     "'folder', 'zip')."),
])
def test_config_mistakes_are_one_line_errors(tmp_path, override, message):
  result = run_main('--config=configs/lfw_demo.py:test', f'--workdir={tmp_path}', override)
  assert_user_error(result, message)


def test_batch_that_does_not_split_over_devices_is_a_one_line_error(tmp_path):
  result = run_main('--config=configs/lfw_demo.py:test', f'--workdir={tmp_path}',
                    '--config.train.batch_size=12', devices=8)
  assert_user_error(result, 'config.train.batch_size=12 does not split over 8 devices; use a '
                    'positive multiple of 8.')


def test_out_of_device_memory_is_one_line_naming_the_knob(capsys):
  @errors.exit_on_user_error
  def allocate_too_much(argv):  # as any command's main: XLA fails to allocate 512 GiB
    del argv
    jax.jit(lambda: jnp.ones((2**37,)))().block_until_ready()

  with pytest.raises(SystemExit) as stopped:
    allocate_too_much([])
  assert stopped.value.code == 1
  assert capsys.readouterr().err == (
      'error: out of memory on the device (Out of memory allocating 549755813888 bytes); lower '
      "config.train.batch_size, or the model's widths or resolution (config.model).\n")


def test_a_stylegan2_batch_its_minibatch_groups_do_not_divide_is_refused_before_the_workdir(
    tmp_path):
  result = run_main('--config=configs/lfw_demo.py:stylegan2_test', f'--workdir={tmp_path}/run',
                    '--config.train.batch_size=6')
  assert_user_error(result, "config.train.batch_size=6 does not split into the discriminator's "
                    'minibatch-standard-deviation groups of config.model.mbstd_group_size=4; use '
                    'a multiple of 4.')
  assert not (tmp_path / 'run').exists()


def test_data_smaller_than_one_batch_is_refused(tmp_path):
  result = run_main('--config=configs/lfw_demo.py:test', f'--workdir={tmp_path}/run',
                    '--config.train.batch_size=128')  # 100 LFW faces
  assert_user_error(result, 'the data have 100 images, fewer than one batch '
                    '(config.train.batch_size=128); use a batch of at most 100 or more images.')
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_a_resume_that_cannot_continue_is_refused_before_compiling_and_a_done_run_says_so(
    tmp_path):
  assert run_main('--config=configs/lfw_demo.py:test', f'--workdir={tmp_path}').returncode == 0
  refused = run_main('--config=configs/lfw_demo.py:test', f'--workdir={tmp_path}',
                     '--config.model.g_width=16')
  assert refused.returncode == 1 and 'model.g_width' in refused.stderr.strip().splitlines()[-1]
  assert 'ready in' not in refused.stderr  # nothing was compiled
  done = run_main('--config=configs/lfw_demo.py:test', f'--workdir={tmp_path}')
  assert done.returncode == 0
  assert ('Nothing to train: the newest checkpoint in ' in done.stderr
          and 'is of step 4, and config.train.num_steps=4; raise train.num_steps' in done.stderr)
