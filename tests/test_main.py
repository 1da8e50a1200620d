"""The command line: the demo writes sample grids; user mistakes are one-line errors, exit 1."""

import pytest

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
     "'folder')."),
])
def test_config_mistakes_are_one_line_errors(tmp_path, override, message):
  result = run_main('--config=configs/lfw_demo.py:test', f'--workdir={tmp_path}', override)
  assert_user_error(result, message)


def test_batch_that_does_not_split_over_devices_is_a_one_line_error(tmp_path):
  result = run_main('--config=configs/lfw_demo.py:test', f'--workdir={tmp_path}',
                    '--config.train.batch_size=12', devices=8)
  assert_user_error(result, 'config.train.batch_size=12 does not split over 8 devices; use a '
                    'positive multiple of 8.')
