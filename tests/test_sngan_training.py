"""What the codebase promises holds for SNGAN: bit-identical reruns and resume (with EMA,
DiffAugment and R1 on), FID in the loop reproduced by the evaluation command, 1 = 2 = 8 devices,
the sampling CLI with interpolation on its checkpoint (bfloat16: tests/test_models.py and
tests/test_train.py)."""

import functools
import json
import os

import jax
import numpy as np
import pytest
from PIL import Image

from configs import lfw_demo
from facegan_jax import evaluate
from facegan_jax.training import loop
from facegan_jax.training import state as state_lib
from facegan_jax.training import trainer as trainer_lib
from tests.conftest import TINY
from tests.helpers import multidevice
from tests.helpers import steps_on_meshes
from tests.test_checkpointing import assert_identical


def everything_on(num_steps, inception_weights, stats_dir):
  """The SNGAN test config with the EMA generator, DiffAugment, R1 and an evaluation at step 4
  (a tiny random Inception: numbers to compare, not FIDs) on."""
  config = lfw_demo.get_config('sngan_test')
  config.train.num_steps = num_steps
  config.eval.update(every=4, num_samples=16, batch_size=8, inception_weights=inception_weights,
                     inception_width_multiplier=TINY, stats_dir=stats_dir, kid_subsets=2,
                     kid_subset_size=8)
  config.checkpoint.every = 2
  config.ema.halflife_images = 100.0
  config.augment.policy = 'color,translation,cutout'
  config.loss.update(r1_gamma=1.0)  # lazy R1 does not combine with the linear decay
  return config


@pytest.fixture(scope='module')
def resumed_and_whole(tmp_path_factory, tiny_weights):
  """Workdirs of 2 steps resumed to 4, and of 4 steps in one go; their final states."""
  resumed, whole, stats = (str(tmp_path_factory.mktemp(name))
                           for name in ('resumed', 'whole', 'stats'))
  config = functools.partial(everything_on, inception_weights=tiny_weights, stats_dir=stats)
  loop.train_and_evaluate(config(2), resumed)
  return (resumed, loop.train_and_evaluate(config(4), resumed),
          whole, loop.train_and_evaluate(config(4), whole))


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(resumed_and_whole):
  resumed_dir, resumed, whole_dir, whole = resumed_and_whole
  assert int(resumed.step) == int(whole.step) == 4
  assert_identical(resumed, whole)
  assert jax.tree_util.tree_leaves(whole.d_batch_stats)  # the spectral-norm vectors are state
  grid = lambda workdir: open(f'{workdir}/samples/step_0000004.png', 'rb').read()
  assert grid(resumed_dir) == grid(whole_dir)
  trainer = trainer_lib.make_trainer(lfw_demo.get_config('sngan_test'))
  first = jax.tree_util.tree_leaves(jax.jit(lambda: state_lib.create_train_state(
      trainer, jax.random.key(0), (32, 32, 1)))().d_batch_stats)
  assert not np.array_equal(first[0], jax.tree_util.tree_leaves(whole.d_batch_stats)[0])


def test_the_evaluation_command_reproduces_the_fid_of_the_training_loop(resumed_and_whole):
  _, _, whole_dir, _ = resumed_and_whole
  with open(os.path.join(whole_dir, 'metrics.jsonl')) as lines:
    in_loop = [row for row in map(json.loads, lines) if 'fid' in row]
  assert [row['step'] for row in in_loop] == [4]
  result = evaluate.evaluate_checkpoint(whole_dir)
  assert result['step'] == 4 and result['num_generated'] == 16
  assert result['fid'] == pytest.approx(in_loop[0]['fid'], rel=1e-6)
  assert result['kid'] == pytest.approx(in_loop[0]['kid'], rel=1e-5, abs=1e-6)


def test_sampling_cli_writes_a_grid_and_interpolations_from_an_sngan_checkpoint(
    resumed_and_whole, tmp_path):
  _, _, whole_dir, _ = resumed_and_whole
  out, strip = tmp_path / 'grid.png', tmp_path / 'strip.png'
  result = multidevice.run_python(['-m', 'facegan_jax.sample', f'--workdir={whole_dir}',
                                   '--num=4', '--seed=3', f'--out={out}', '--interpolate=1,2,3',
                                   '--frames=4', f'--interpolation_out={strip}'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'samples of step 4, seed 3' in result.stdout and out.stat().st_size > 0
  with Image.open(strip) as image:  # 2 pairs x 4 frames of 32x32, 2-pixel borders
    assert image.size == (4 * 34 + 2, 2 * 34 + 2)


@pytest.mark.slow
def test_one_two_and_eight_devices_give_the_same_training(tmp_path):
  runs = steps_on_meshes.train_on_meshes(tmp_path, 2, 'sngan_test')
  steps_on_meshes.assert_meshes_agree(runs, with_params=False)
  exact, round_off = ~runs['round_off'], runs['round_off']
  # A parameter whose gradient is round-off moves by up to lr * sqrt((1 - b2^t) / (1 - b2)) at
  # Adam's step t (b1 = 0, b2 = 0.9: an earlier gradient of ~0 leaves v small), either way.
  lr, beta2 = 2e-4, 0.9
  largest_move = sum(lr * np.sqrt((1 - beta2**t) / (1 - beta2)) for t in (1, 2))
  for count in (2, 8):
    np.testing.assert_allclose(runs[f'params_{count}'][exact], runs['params_1'][exact],
                               rtol=1e-4, atol=2e-6)
    np.testing.assert_allclose(runs[f'params_{count}'][round_off], runs['params_1'][round_off],
                               rtol=0, atol=2 * largest_move)
  assert not np.allclose(runs['losses_1'][0], runs['losses_1'][-1])  # training moved

