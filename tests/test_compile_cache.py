"""The persistent compilation cache: where it lives, a second process compiles nothing, and a
run from cached programs is bit-identical to one compiled afresh."""

import functools
import os

import jax
import numpy as np
import pytest

from configs import lfw_demo
from facegan_jax import models
from facegan_jax.runs import checkpointing
from facegan_jax.system import compile_cache
from facegan_jax.system import parallel
from facegan_jax.system import traced_programs
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
  config = lfw_demo.get_config('stylegan2')  # R1 every 16 steps
  config.loss.pl_weight = 2.0  # path length every 4, as in NVIDIA's recipe at 64x64 and up
  trainer = trainer_lib.make_trainer(config)
  phases = step_lib.phases_of_run(trainer, 0, config.train.num_steps)
  assert phases == [step_lib.LazyPhases(True, True), step_lib.LazyPhases(False, False),
                    step_lib.LazyPhases(False, True)]  # R1 alone never comes: 16 % 4 == 0
  assert step_lib.phases_of_run(trainer, 5, 7) == [step_lib.LazyPhases(False, False)]
  assert step_lib.phases_of_run(trainer, 7, 7) == []
  plain = trainer_lib.make_trainer(lfw_demo.get_config())
  assert step_lib.phases_of_run(plain, 0, 2000) == [step_lib.LazyPhases(False, False)]


def test_the_first_program_is_compiled_at_once_and_the_others_behind_it():
  """StepPrograms compiles the first lazy-phase program before it returns and the rest in the
  background; the programs, however compiled, train bit-identically to the jitted step."""
  config = lfw_demo.get_config('test')
  config.loss.r1_gamma, config.loss.r1_every = 1.0, 2  # programs with and without R1
  trainer = trainer_lib.make_trainer(config)
  mesh = parallel.make_mesh()
  image_shape = models.image_shape(config.model)
  _, step_fn, _ = step_lib.compile_functions(trainer, mesh, image_shape)
  phase_list = step_lib.phases_of_run(trainer, 0, config.train.num_steps)
  assert len(phase_list) == 2

  def fresh_state():
    return jax.device_put(state_lib.create_train_state(trainer, jax.random.key(0), image_shape),
                          parallel.replicated(mesh))
  batch = jax.device_put(
      np.random.default_rng(0).integers(0, 256, (1, config.train.batch_size, *image_shape),
                                        dtype=np.uint8), parallel.batch_sharding(mesh))
  batch_spec = jax.ShapeDtypeStruct(batch.shape, batch.dtype, sharding=batch.sharding)
  programs = step_lib.StepPrograms(step_fn, fresh_state(), batch_spec, phase_list,
                                   config.to_dict())
  try:
    assert list(programs._programs) == phase_list[:1]  # pylint: disable=protected-access
    ahead, jitted = fresh_state(), fresh_state()
    for step in range(4):
      phases = step_lib.lazy_phases(trainer, step)
      ahead, _ = programs[phases](ahead, batch)
      jitted, _ = step_fn(jitted, batch, phases)
  finally:
    programs.close()
  for x, y in zip(jax.tree_util.tree_leaves(ahead.replace(key=jax.random.key_data(ahead.key))),
                  jax.tree_util.tree_leaves(jitted.replace(key=jax.random.key_data(jitted.key))),
                  strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


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


def assert_same_leaves(run, other):
  for leaf, other_leaf in zip(final_leaves(run), final_leaves(other), strict=True):
    np.testing.assert_array_equal(np.asarray(leaf), np.asarray(other_leaf))


@pytest.mark.slow
def test_a_second_process_traces_and_compiles_nothing_and_trains_bit_identically(tmp_path):
  cache = tmp_path / 'cache'
  cold = train(tmp_path / 'cold', cache)
  assert ('The train step is ready in' in cold and 'compiled (1 program(s) compiled, 0 from the '
          'cache; 1 traced, 0 read traced from the cache); its other 0 lazy-phase program(s) '
          'compile while the first steps run.' in cold)
  assert len(os.listdir(cache)) > 5  # every program of the run, however small
  assert len(os.listdir(cache / 'traced')) == 1  # the train step's
  warm = train(tmp_path / 'warm', cache)
  assert 'ready in' in warm and 'from the persistent compilation cache.' in warm
  assert 'Programs of this run: from the persistent compilation cache.' in warm  # no miss
  assert_same_leaves(tmp_path / 'cold', tmp_path / 'warm')
  off = train(tmp_path / 'off', 'off')
  assert 'Persistent compilation cache: off' in off
  assert 'Programs of this run: compiled (the persistent cache is off).' in off
  assert_same_leaves(tmp_path / 'cold', tmp_path / 'off')


def halve_and_sum(arrays):
  return [arrays[0] / 2, {'sum': arrays[1].sum()}]


def replicated():
  return parallel.replicated(parallel.make_mesh())


def specs_of(*arrays):
  return ([jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated()) for x in arrays],)


def test_a_traced_program_is_stored_then_read_instead_of_traced(tmp_path, monkeypatch):
  monkeypatch.setattr(traced_programs, 'directory', lambda: str(tmp_path))
  arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4, np.int32)]
  compile_program = functools.partial(
      traced_programs.compile_program, halve_and_sum, specs_of(*arrays),
      description={'what': 'halves'}, out_shardings=replicated())
  with compile_cache.CacheCount() as count:
    first = compile_program()
  assert (count.traced_misses, count.traced_hits) == (1, 0)
  (entry,) = os.listdir(tmp_path)
  with compile_cache.CacheCount() as count:
    second = compile_program()
  assert (count.traced_misses, count.traced_hits) == (0, 1)
  for program in (first, second):
    halved, sums = program(arrays)
    np.testing.assert_array_equal(halved, arrays[0] / 2)
    assert int(sums['sum']) == 4
  (tmp_path / entry).write_bytes(b'not a program')  # a damaged entry is traced again
  with compile_cache.CacheCount() as count:
    compile_program()
  assert (count.traced_misses, count.traced_hits) == (1, 0)
  assert os.listdir(tmp_path) == [entry] and (tmp_path / entry).read_bytes() != b'not a program'


def test_the_key_of_a_traced_program_names_its_description_and_inputs():
  arrays = [np.zeros((2, 3), np.float32), np.ones(4, np.int32)]
  key = functools.partial(traced_programs.program_key, out_shardings=replicated(),
                          donate_argnums=())
  base = key({'lr': 1}, specs_of(*arrays))
  assert key({'lr': 1}, specs_of(*arrays)) == base
  assert key({'lr': 2}, specs_of(*arrays)) != base
  assert key({'lr': 1}, specs_of(arrays[0][:1], arrays[1])) != base
  assert key({'lr': 1}, specs_of(arrays[0].astype(np.float16), arrays[1])) != base
  assert traced_programs.program_key({'lr': 1}, specs_of(*arrays), replicated(), (0,)) != base


def test_the_oldest_traced_programs_beyond_the_limit_are_removed(tmp_path, monkeypatch):
  monkeypatch.setattr(traced_programs, 'MAX_ENTRIES', 3)
  for index in range(5):
    (tmp_path / f'program{index}').write_bytes(b'')
    os.utime(tmp_path / f'program{index}', (index, index))
  (tmp_path / '.program5.123').write_bytes(b'')  # another process is writing it
  os.utime(tmp_path / '.program5.123', (0, 0))
  traced_programs._remove_oldest(str(tmp_path))  # pylint: disable=protected-access
  assert sorted(os.listdir(tmp_path)) == ['.program5.123', 'program2', 'program3', 'program4']
