"""Checkpoints: bit-exact resume after SIGKILL, config checks, damage, the workdir lock."""

import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import default
from configs import lfw_demo
from configs import toy2x2
from facegan_jax.runs import checkpointing
from facegan_jax.runs import workdir_lock
from facegan_jax.system.errors import UserError
from facegan_jax.training import config_check
from facegan_jax.training import loop
from facegan_jax.training import state as state_lib
from facegan_jax.training import trainer as trainer_lib
from tests.helpers import cpu_features
from tests.helpers import multidevice


def state_leaves(state):
  return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
                     else x) for x in jax.tree_util.tree_leaves(state)]


def assert_identical(a, b):
  for x, y in zip(state_leaves(a), state_leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def small_config(num_steps=4, every=2):
  config = lfw_demo.get_config('test')
  config.train.num_steps = num_steps
  config.checkpoint.every = every
  return config


def snapshot(workdir):
  """{relative path: (size, mtime)} of every file but the lock."""
  files = {}
  for root, _, names in os.walk(workdir):
    for name in names:
      path = os.path.join(root, name)
      if name != workdir_lock.LOCK_NAME:
        files[os.path.relpath(path, workdir)] = (os.path.getsize(path), os.path.getmtime(path))
  return files


def damage_checkpoint(workdir, step, damage='truncate'):
  """Truncates to half, or deletes, every data file of the state of checkpoint `step` (which
  arrays a file holds varies from run to run, so damaging one may spare the generator's)."""
  state_dir = os.path.join(workdir, 'checkpoints', str(step), 'state')
  data_files = [os.path.join(root, name) for root, _, names in os.walk(state_dir)
                for name in names if 'ocdbt.process' in root or name == '_METADATA']
  for victim in data_files:
    if damage == 'truncate':
      with open(victim, 'r+b') as f:
        f.truncate(os.path.getsize(victim) // 2)
    else:
      os.remove(victim)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A workdir with checkpoints of steps 2 and 4."""
  workdir = str(tmp_path_factory.mktemp('trained'))
  state = loop.train_and_evaluate(small_config(), workdir)
  return workdir, state


def test_checkpoints_hold_the_config_and_versions(trained):
  workdir, _ = trained
  manager = checkpointing.make_manager(workdir, create=False)
  assert manager.all_steps() == [2, 4]
  run = checkpointing.restore_run(manager, 4)
  assert run['config']['model']['g_width'] == 8
  assert set(run['versions']) >= {'jax', 'flax', 'facegan_jax'}


def test_resuming_with_more_steps_equals_an_uninterrupted_run(trained, tmp_path):
  workdir, _ = trained
  resumed_dir = str(tmp_path / 'resumed')
  os.rename(workdir, resumed_dir)  # the fixture's workdir is reused below: copy semantics
  try:
    resumed = loop.train_and_evaluate(small_config(num_steps=7), resumed_dir)
  finally:
    os.rename(resumed_dir, workdir)
  uninterrupted = loop.train_and_evaluate(small_config(num_steps=7), str(tmp_path / 'whole'))
  assert int(resumed.step) == 7
  assert_identical(resumed, uninterrupted)


def test_a_config_change_that_cannot_continue_is_refused_and_changes_nothing(tmp_path):
  workdir = str(tmp_path)
  loop.train_and_evaluate(small_config(), workdir)
  before = snapshot(workdir)
  config = small_config(num_steps=8)
  config.model.g_width = 16
  config.seed = 3
  with pytest.raises(UserError) as error:
    loop.train_and_evaluate(config, workdir)
  message = str(error.value)
  assert 'differs in 2 field(s)' in message
  assert 'model.g_width: 8 -> 16' in message and 'seed: 0 -> 3' in message
  assert 'use a new --workdir' in message
  assert snapshot(workdir) == before


@pytest.mark.parametrize('damage', ['truncate', 'delete'])
def test_a_damaged_latest_checkpoint_stops_with_a_clear_error(tmp_path, damage):
  workdir = str(tmp_path)
  loop.train_and_evaluate(small_config(), workdir)
  damage_checkpoint(workdir, 4, damage)
  before = snapshot(workdir)
  with pytest.raises(UserError, match=r'the latest checkpoint in .*/checkpoints/4 cannot be read'
                     r'.*to resume from step 2, move it aside: mv .*/4 .*/4\.damaged'):
    loop.train_and_evaluate(small_config(num_steps=6), workdir)
  assert snapshot(workdir) == before


def test_a_second_run_on_a_workdir_in_use_is_refused(tmp_path):
  with workdir_lock.hold(str(tmp_path)):
    result = multidevice.run_python(['-m', 'facegan_jax.main', '--config=configs/lfw_demo.py:test',
                                     f'--workdir={tmp_path}'])
  assert result.returncode != 0 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: workdir {tmp_path} is in use by another run (pid {os.getpid()}); wait for it to '
      'finish, stop it, or choose another --workdir.')
  assert not os.path.exists(tmp_path / 'checkpoints')


@pytest.mark.slow
@pytest.mark.parametrize('variant, steps, extra', [
    ('test', 100, []), ('sngan_test', 40, []),
    ('stylegan2_test', 40, ['--config.augment.policy=color,translation,cutout']),
    ('ada_test', 100, [])])
def test_resume_after_sigkill_is_bit_identical_to_an_uninterrupted_run(tmp_path, variant, steps,
                                                                        extra):
  """All three runs go through `main`, so they share its XLA flags (they change the numerics).

  SNGAN's spectral-norm vectors and linear learning-rate decay are in its state and step;
  StyleGAN2's w average, path-length mean and EMA are in its state, its lazy regularisers take
  steps of their own, and DiffAugment draws from the step's key. ADA's p moves every 2 steps
  (and its sign sums fill between), so the kill leaves it mid-adaptation. The kill comes within 50 ms of
  step 20's checkpoint: DCGAN's fast steps need 100 steps to be sure it comes before the end,
  the others 40.
  """
  every = 10
  flags = [f'--config=configs/lfw_demo.py:{variant}', f'--config.train.num_steps={steps}',
           f'--config.optim.decay_steps={steps}', f'--config.checkpoint.every={every}',
           '--config.train.log_every=100', f'--config.samples.every={steps}', *extra]
  main = [sys.executable, '-m', 'facegan_jax.main', *flags]
  killed_dir = tmp_path / 'killed'
  process = subprocess.Popen([*main, f'--workdir={killed_dir}'], cwd=multidevice.ROOT,
                             env=multidevice.environment(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while not (killed_dir / 'checkpoints' / str(2 * every)).is_dir():
    assert time.time() < deadline and process.poll() is None, 'no checkpoint was written'
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = max(checkpointing.make_manager(str(killed_dir), create=False).all_steps())
  assert killed_at < steps, 'the run ended before it was killed'

  resumed_run = multidevice.run([*main, f'--workdir={killed_dir}'])
  assert resumed_run.returncode == 0, resumed_run.stderr[-3000:]
  assert f'from step {killed_at} to {steps}' in resumed_run.stderr
  whole_run = multidevice.run([*main, f'--workdir={tmp_path / "whole"}'])
  assert whole_run.returncode == 0, whole_run.stderr[-3000:]
  config = lfw_demo.get_config(variant)
  size = config.model.resolution
  # An abstract template: StyleGAN2's initialisation op by op takes 16 s, restoring none.
  template = jax.eval_shape(lambda: state_lib.create_train_state(
      trainer_lib.make_trainer(config), jax.random.key(0), (size, size, config.model.channels)))
  resumed, uninterrupted = (
      checkpointing.restore_state(checkpointing.make_manager(str(path), create=False), steps,
                                  template) for path in (killed_dir, tmp_path / 'whole'))
  assert int(resumed.step) == steps
  assert_identical(resumed, uninterrupted)
  if config.augment.pipe:
    assert float(resumed.ada_p) > 0  # the controller moved p
  # Training moved to the end: the last steps changed the parameters.
  before_last = checkpointing.restore_state(
      checkpointing.make_manager(str(killed_dir), create=False), steps - every, template)
  assert not np.array_equal(*(jax.tree_util.tree_leaves(state.d_params)[0]
                              for state in (before_last, resumed)))


def test_changes_that_keep_the_training_are_resumable():
  saved = small_config().to_dict()
  current = small_config(num_steps=100, every=7)
  current.train.log_every = 9
  current.eval.every = 50
  current.data.cache_dir = '/elsewhere'
  assert checkpointing.config_differences(saved, current.to_dict()) == []
  current.optim.g_learning_rate = 1e-4  # lower rates continue a run that diverged
  current.optim.d_learning_rate = 1e-4
  assert checkpointing.config_differences(saved, current.to_dict()) == []
  current.train.batch_size = 16
  current.optim.b1 = 0.9
  assert checkpointing.config_differences(saved, current.to_dict()) == [
      'optim.b1: 0.5 -> 0.9', 'train.batch_size: 8 -> 16']


def test_saved_configs_are_read_with_todays_names_and_fields():
  saved = {'train': {'sample_every': 5, 'num_samples': 16, 'batch_size': 8},
           'eval': {'eval_every': 0, 'num_samples': 100}}
  upgraded = checkpointing.upgrade_saved_config(saved)
  assert upgraded['samples'] == {'every': 5, 'count': 16}
  assert upgraded['eval']['every'] == 0 and 'eval_every' not in upgraded['eval']
  assert upgraded['train']['batch_size'] == 8 and upgraded['eval']['num_samples'] == 100
  # Every other field at its default, which is what runs before it did.
  assert config_check.flatten(upgraded).keys() == config_check.flatten(
      default.get_config().to_dict()).keys()
  assert (upgraded['optim']['schedule'], upgraded['loss']['pl_weight']) == ('constant', 0.0)
  assert saved['train']['sample_every'] == 5  # the input is left as it was


@pytest.mark.slow
def test_a_workdir_written_before_the_renames_resumes_bit_identically(tmp_path):
  """tests/data/toy2x2_step2_v0.1.0 was written by facegan_jax 0.1.0 (tests/data/README.md)."""
  old_workdir = tmp_path / 'old'
  shutil.copytree(os.path.join(multidevice.ROOT, 'tests', 'data', 'toy2x2_step2_v0.1.0'),
                  old_workdir)
  flags = ['--config=configs/toy2x2.py', '--config.train.num_steps=4',
           '--config.train.log_every=1', '--config.samples.every=2', '--config.checkpoint.every=2',
           '--config.samples.count=4', '--config.ema.halflife_images=100']
  # Version 0.1.0 computed steps 1 and 2 with XLA's default optimisations (tests/conftest.py
  # lowers them): both runs use those, so that the same programs compute every step.
  default_xla = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS='0')
  for workdir in (old_workdir, tmp_path / 'new'):
    result = multidevice.run([sys.executable, '-m', 'facegan_jax.main', *flags,
                              f'--workdir={workdir}'], env=default_xla)
    assert result.returncode == 0, result.stderr[-3000:]
  config = toy2x2.get_config()
  config.ema.halflife_images = 100.0
  template = state_lib.create_train_state(trainer_lib.make_trainer(config), jax.random.key(0), (2, 2, 1))
  resumed, fresh = (checkpointing.restore_state(
      checkpointing.make_manager(str(path), create=False), 4, template)
                    for path in (old_workdir, tmp_path / 'new'))
  if cpu_features.has_avx512():  # as the machine that wrote it
    assert_identical(resumed, fresh)
  else:  # XLA:CPU compiled the fresh steps 1-2 for other vector units (docs/reproducibility.md)
    for x, y in zip(state_leaves(resumed), state_leaves(fresh), strict=True):
      np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)

