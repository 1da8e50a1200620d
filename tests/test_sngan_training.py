"""What the codebase promises holds for SNGAN: bit-identical reruns and resume (with EMA,
DiffAugment and R1 on), 1 = 2 = 8 devices, the sampling CLI on its checkpoint (bfloat16:
tests/test_models.py)."""

import jax
import numpy as np
import pytest

from configs import lfw_demo
from facegan_jax import train
from tests.helpers import multidevice
from tests.test_checkpointing import assert_identical


def everything_on(num_steps):
  """The SNGAN test config with the EMA generator, DiffAugment and R1 on."""
  config = lfw_demo.get_config('sngan_test')
  config.train.num_steps = num_steps
  config.checkpoint.every = 2
  config.ema.halflife_images = 100.0
  config.augment.policy = 'color,translation,cutout'
  config.loss.update(r1_gamma=1.0)  # lazy R1 does not combine with the linear decay
  return config


@pytest.fixture(scope='module')
def resumed_and_whole(tmp_path_factory):
  """Workdirs of 2 steps resumed to 4, and of 4 steps in one go; their final states."""
  resumed, whole = (str(tmp_path_factory.mktemp(name)) for name in ('resumed', 'whole'))
  train.train_and_evaluate(everything_on(2), resumed)
  return (resumed, train.train_and_evaluate(everything_on(4), resumed),
          whole, train.train_and_evaluate(everything_on(4), whole))


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(resumed_and_whole):
  resumed_dir, resumed, whole_dir, whole = resumed_and_whole
  assert int(resumed.step) == int(whole.step) == 4
  assert_identical(resumed, whole)
  assert jax.tree_util.tree_leaves(whole.d_batch_stats)  # the spectral-norm vectors are state
  grid = lambda workdir: open(f'{workdir}/samples/step_0000004.png', 'rb').read()
  assert grid(resumed_dir) == grid(whole_dir)
  first = jax.tree_util.tree_leaves(train.create_train_state(
      train.make_trainer(everything_on(4)), jax.random.key(0), (32, 32, 1)).d_batch_stats)
  assert not np.array_equal(first[0], jax.tree_util.tree_leaves(whole.d_batch_stats)[0])


def test_sampling_cli_writes_a_grid_from_an_sngan_checkpoint(resumed_and_whole, tmp_path):
  _, _, whole_dir, _ = resumed_and_whole
  out = tmp_path / 'grid.png'
  result = multidevice.run_python(['-m', 'facegan_jax.sample', f'--workdir={whole_dir}',
                                   '--num=4', '--seed=3', f'--out={out}'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'samples of step 4, seed 3' in result.stdout and out.stat().st_size > 0


@pytest.mark.slow
def test_one_two_and_eight_devices_give_the_same_training(tmp_path):
  out = tmp_path / 'runs.npz'
  result = multidevice.run_python(['tests/helpers/steps_on_meshes.py', str(out), '2',
                                   'sngan_test', '1', '2', '8'], devices=8)
  assert result.returncode == 0, result.stderr[-3000:]
  runs = np.load(out)
  exact, round_off = ~runs['round_off'], runs['round_off']
  lr, steps = 2e-4, 2
  for count in (2, 8):
    np.testing.assert_allclose(runs[f'losses_{count}'], runs['losses_1'], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(runs[f'params_{count}'][exact], runs['params_1'][exact],
                               rtol=1e-4, atol=2e-6)
    np.testing.assert_allclose(runs[f'params_{count}'][round_off], runs['params_1'][round_off],
                               rtol=0, atol=2 * lr * steps)
  assert not np.allclose(runs['losses_1'][0], runs['losses_1'][-1])  # training moved

