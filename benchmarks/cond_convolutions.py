"""Why the lazy regularisers are not a lax.cond: the same gradients inside a conditional branch.

  python benchmarks/cond_convolutions.py [--batch_size=32] [--reps=3]

Times four computations of the LFW demo's StyleGAN2 discriminator (32x32, 32-64 channels)
compiled on their own and inside a `lax.cond` branch that is taken: D's weight gradients
(forward and backward), its input gradient, the R1 penalty and R1's weight gradients (the lazy R1
step). Medians of `--reps` calls after one warm-up call, in milliseconds.
"""

import os
import statistics
import sys
import time

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
from absl import app
from absl import flags

from configs import lfw_demo
from facegan_jax.system import xla_flags
from facegan_jax.training import losses
from facegan_jax.training import trainer as trainer_lib

flags.DEFINE_integer('batch_size', 32, 'Images per call.')
flags.DEFINE_integer('reps', 3, 'Timed calls per computation and form.')
FLAGS = flags.FLAGS


def median_ms(function, *args) -> float:
  jax.block_until_ready(function(*args))
  seconds = []
  for _ in range(FLAGS.reps):
    start = time.perf_counter()
    jax.block_until_ready(function(*args))
    seconds.append(time.perf_counter() - start)
  return 1e3 * statistics.median(seconds)


def main(argv):
  del argv
  discriminator = trainer_lib.make_trainer(lfw_demo.get_config('stylegan2')).discriminator
  images = jax.random.normal(jax.random.key(0), (FLAGS.batch_size, 32, 32, 1))
  params = discriminator.init(jax.random.key(1), images)['params']
  logit_sum = lambda p, x: discriminator.apply({'params': p}, x).sum()
  r1 = lambda p, x: losses.r1_penalty(lambda y: discriminator.apply({'params': p}, y), x)
  computations = {
      'weight gradients': jax.grad(logit_sum),
      'input gradient': jax.grad(logit_sum, argnums=1),
      'R1': r1,
      "R1's weight gradients": jax.grad(r1),
  }
  print(f'{jax.devices()[0].device_kind}, jax {jax.__version__}, batch {FLAGS.batch_size}')
  print('| computation | plain (ms) | inside lax.cond (ms) | ratio |')
  print('| --- | --- | --- | --- |')
  for name, computation in computations.items():
    def in_branch(p, x, taken, computation=computation):
      skipped = lambda p, x: jax.tree.map(jnp.zeros_like, jax.eval_shape(computation, p, x))
      return jax.lax.cond(taken, computation, skipped, p, x)
    plain = median_ms(jax.jit(computation), params, images)
    branch = median_ms(jax.jit(in_branch), params, images, True)
    print(f'| {name} | {plain:.1f} | {branch:.1f} | {branch / plain:.0f}x |', flush=True)


if __name__ == '__main__':
  xla_flags.add_speed_flags()
  app.run(main)
