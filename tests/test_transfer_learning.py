"""Transfer learning as stylegan2-ada's --resume: config.init.from_pkl starts a new run from an
NVIDIA pickle's G, G_ema and D with fresh optimiser states, the file's sha256 in the run's
config; a config whose model is not the file's is refused with one line before anything is
written or compiled."""

import hashlib
import json

import jax
import numpy as np
import pytest

from configs import ffhq
from facegan_jax.pretrained import convert_stylegan2
from facegan_jax.pretrained import nvidia_pickle
from facegan_jax.system.errors import UserError
from facegan_jax.training import loop
from tests.helpers import multidevice
from tests.test_import_stylegan2 import faces
from tests.test_nvidia_pickle import path

WEIGHTS = path('sg3_stylegan2_res32')


def transfer_config(tmp_path):
  """configs/ffhq.py's config F with the fixture's model, on 8 random faces, one cheap step."""
  config = ffhq.get_config('stylegan2')
  config.model.update(nvidia_pickle.stylegan2_model_fields(nvidia_pickle.read(WEIGHTS)))
  config.data.path = str(faces(tmp_path / 'faces'))
  config.data.cache_dir = str(tmp_path / 'cache')
  config.loss.r1_gamma = config.loss.pl_weight = 0.0
  config.train.update(batch_size=8, num_steps=1)
  config.samples.count = 4
  config.init.from_pkl = WEIGHTS
  return config


@pytest.mark.slow
def test_a_new_run_starts_from_the_files_networks_with_fresh_adam_states(tmp_path):
  config = transfer_config(tmp_path)
  networks = convert_stylegan2.read_initial_networks(config)
  with open(WEIGHTS, 'rb') as file:
    assert config.init.from_pkl_sha256 == hashlib.sha256(file.read()).hexdigest()
  workdir = tmp_path / 'run'
  state = loop.train_and_evaluate(config, str(workdir), networks)
  assert int(state.step) == 1
  saved = json.loads((workdir / loop.CONFIG_FILE).read_text())
  assert saved['init'] == {'from_pkl': WEIGHTS, 'from_pkl_sha256': config.init.from_pkl_sha256}
  # One Adam step from a fresh state (beta1 0) moves every stored weight by the learning rate
  # times g / |g| (up to float32 round-off): D is the file's plus that step, not a random init.
  learning_rate = config.optim.d_learning_rate
  steps = jax.tree.map(lambda after, before: np.abs(np.asarray(after) - before).max(),
                       state.d_params, networks.discriminator['params'])
  assert 0 < max(jax.tree.leaves(steps)) <= learning_rate * 1.001
  # The EMA (half-life 10k images, 8 seen) is the file's G_ema moved 0.05% towards G.
  ema_moves = jax.tree.map(lambda after, before: np.abs(np.asarray(after) - before).max(),
                           state.g_ema_params, networks.ema_params)
  assert max(jax.tree.leaves(ema_moves)) < 1e-3
  np.testing.assert_array_equal(
      state.g_batch_stats['synthesis']['b32']['conv1']['noise_const'],
      networks.generator['batch_stats']['synthesis']['b32']['conv1']['noise_const'])


def test_a_model_that_is_not_the_files_is_refused_before_anything_is_written(tmp_path):
  workdir = tmp_path / 'run'
  result = multidevice.run_python([
      '-m', 'facegan_jax.main', '--config=configs/ffhq.py:stylegan2',
      f'--config.init.from_pkl={WEIGHTS}', f'--workdir={workdir}'])
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].endswith(
      f'config.model.resolution=256, but {WEIGHTS} holds a network built with 32; set '
      '--config.model.resolution=32.')
  assert not workdir.exists()


def test_a_file_with_another_digest_is_refused(tmp_path):
  config = transfer_config(tmp_path)
  config.init.from_pkl_sha256 = '0' * 64
  with pytest.raises(UserError) as error:
    convert_stylegan2.read_initial_networks(config)
  assert str(error.value).startswith(f'config.init.from_pkl_sha256={"0" * 64}, but {WEIGHTS} '
                                     'has sha256 ')
  config.init.from_pkl = WEIGHTS[:-len('.pkl')] + '.npz'
  with pytest.raises(UserError, match=r'is not a network pickle \(\.pkl\)'):
    convert_stylegan2.read_initial_networks(config)
