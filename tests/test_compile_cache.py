"""The persistent compilation cache: where it lives, a second process compiles nothing, and a
run from cached programs is bit-identical to one compiled afresh."""

import os

import jax
import numpy as np
import pytest

from configs import lfw_demo
from facegan_jax import models
from facegan_jax.runs import checkpointing
from facegan_jax.system import compile_cache
from facegan_jax.system.errors import UserError
from facegan_jax.training import state as state_lib
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib
from tests.helpers import multidevice


def test_auto_follows_jax_then_the_workdir_then_the_home_cache(monkeypatch):
  monkeypatch.setenv('JAX_COMPILATION_CACHE_DIR', '/jax/cache')
  assert compile_cache.resolve('auto', '/runs/a') == '/jax/cache'
  monkeypatch.delenv('JAX_COMPILATION_CACHE_DIR')
  assert compile_cache.resolve('auto', 'gs://bucket/run/') == 'gs://bucket/run/compilation_cache'
  assert compile_cache.resolve('auto', '/runs/a') == '~/.cache/facegan_jax/xla'
  assert compile_cache.resolve('/elsewhere', '/runs/a') == '/elsewhere'
  assert compile_cache.resolve('off', '/runs/a') is None
  assert compile_cache.resolve('', '/runs/a') is None


def test_a_cache_directory_that_cannot_be_made_is_one_line(tmp_path):
  (tmp_path / 'file').write_text('')
  with pytest.raises(UserError, match=r'^compilation cache .*/file/cache cannot be used \(Not a '
                     r"directory\); set config.compilation_cache \(or --compilation_cache\) to a "
                     r"directory you can write to, or to 'off'.$"):
    compile_cache.enable(str(tmp_path / 'file' / 'cache'), str(tmp_path))


def test_only_the_lazy_phase_combinations_a_run_uses_are_compiled():
  config = lfw_demo.get_config('stylegan2')  # R1 every 16 steps, path length every 4
  trainer = trainer_lib.make_trainer(config)
  phases = step_lib.phases_of_run(trainer, 0, config.train.num_steps)
  assert phases == [step_lib.LazyPhases(True, True), step_lib.LazyPhases(False, False),
                    step_lib.LazyPhases(False, True)]  # R1 alone never comes: 16 % 4 == 0
  assert step_lib.phases_of_run(trainer, 5, 7) == [step_lib.LazyPhases(False, False)]
  assert step_lib.phases_of_run(trainer, 7, 7) == []
  plain = trainer_lib.make_trainer(lfw_demo.get_config())
  assert step_lib.phases_of_run(plain, 0, 2000) == [step_lib.LazyPhases(False, False)]


def train(workdir, cache_dir):
  """`main` on the demo's test variant with the cache in `cache_dir`; its stderr."""
  env = {name: value for name, value in os.environ.items()
         if name != 'JAX_COMPILATION_CACHE_DIR'}
  result = multidevice.run([multidevice.sys.executable, '-m', 'facegan_jax.main',
                            '--config=configs/lfw_demo.py:test', f'--workdir={workdir}',
                            f'--config.compilation_cache={cache_dir}'], env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stderr


def final_leaves(workdir):
  """The leaves of the run's last checkpoint (step 4), as numpy."""
  config = lfw_demo.get_config('test')
  template = state_lib.create_train_state(trainer_lib.make_trainer(config), jax.random.key(0),
                                          models.image_shape(config.model))
  manager = checkpointing.make_manager(str(workdir), create=False)
  state = checkpointing.restore_state(manager, 4, template)
  return jax.tree_util.tree_leaves(state.replace(key=jax.random.key_data(state.key)))


@pytest.mark.slow
def test_a_second_process_compiles_nothing_and_trains_bit_identically(tmp_path):
  cache = tmp_path / 'cache'
  cold = train(tmp_path / 'cold', cache)
  assert 'The train step (1 lazy-phase program(s)) is ready' in cold
  assert 'compiled (1 program(s) compiled, 0 from the cache)' in cold
  assert len(os.listdir(cache)) > 5  # every program of the run, however small
  warm = train(tmp_path / 'warm', cache)
  assert 'ready in' in warm and 'from the persistent compilation cache.' in warm
  assert 'Programs of this run: from the persistent compilation cache.' in warm  # no miss
  for cold_leaf, warm_leaf in zip(final_leaves(tmp_path / 'cold'), final_leaves(tmp_path / 'warm'),
                                  strict=True):
    np.testing.assert_array_equal(np.asarray(cold_leaf), np.asarray(warm_leaf))


@pytest.mark.slow
def test_off_compiles_afresh(tmp_path):
  log = train(tmp_path / 'run', 'off')
  assert 'Persistent compilation cache: off' in log and 'compiled (' in log
