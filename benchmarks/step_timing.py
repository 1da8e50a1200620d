"""The train step that training runs, compiled for timing, and timed step by step."""

import importlib
import math
import time

import jax
import numpy as np
from absl import flags

from facegan_jax.system import parallel
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib

flags.DEFINE_integer('rounds', 6, 'Rounds of timed steps (train_step.py times matmuls after '
                     'each; step_breakdown.py times every variant in each).')
flags.DEFINE_integer('steps', 5, 'Timed steps per round (and variant).')

WARMUP_STEPS = 3


def load_config(name: str):
  """The config 'NAME[:variant]' of configs/NAME.py."""
  file, _, variant = name.partition(':')
  return importlib.import_module(f'configs.{file}').get_config(variant or None)


def lazy_cycle(trainer: trainer_lib.Trainer) -> int:
  """Steps after which the lazy regularisers' phases repeat (1 without them)."""
  return math.lcm(trainer.r1_every if trainer.r1_gamma else 1,
                  trainer.pl_every if trainer.pl_weight else 1)


def compile_step(config, batch_size: int, compute_dtype: str = 'float32'):
  """The compiled train step of `config` at `batch_size`, warmed up, with its inputs.

  Returns (trainer, compiled, state, batch, compile seconds): `compiled` maps each
  `step_lib.LazyPhases` of a cycle of the lazy regularisers to its compiled step (one entry when
  there are none); the seconds are those of all of them.
  """
  config.train.batch_size = batch_size
  config.train.compute_dtype = compute_dtype
  trainer = trainer_lib.make_trainer(config)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(batch_size, mesh.devices.size)
  image_shape = (config.model.resolution, config.model.resolution, config.model.channels)
  init, step, _ = step_lib.compile_functions(trainer, mesh, image_shape)
  state = init(jax.random.key(config.seed))
  images = np.random.default_rng(0).integers(
      0, 256, (trainer.real_batches, batch_size) + image_shape, np.uint8)
  batch = parallel.host_batch_to_global(images, mesh)

  start = time.perf_counter()
  compiled = {}
  for phases in sorted({step_lib.lazy_phases(trainer, i) for i in range(lazy_cycle(trainer))}):
    compiled[phases] = step.lower(state, batch, phases).compile()
  compile_seconds = time.perf_counter() - start
  _, state = timed_steps(trainer, compiled, state, batch, WARMUP_STEPS)
  return trainer, compiled, state, batch, compile_seconds


def timed_steps(trainer, compiled, state, batch, count: int):
  """Runs `count` steps (each the compiled variant of its lazy phases), each timed to
  `block_until_ready`; returns (seconds, state)."""
  seconds = []
  for _ in range(count):
    start = time.perf_counter()
    state, _ = compiled[step_lib.lazy_phases(trainer, int(state.step))](state, batch)
    jax.block_until_ready(state)
    seconds.append(time.perf_counter() - start)
  return seconds, state
