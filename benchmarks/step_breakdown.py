"""Where the train step's time goes: the step timed with a kind of convolution stubbed out.

  python benchmarks/step_breakdown.py [--config=celeba] [--batch_size=64] [--rounds=6]
      [--steps=5]

Four variants of the step that benchmarks/train_step.py times are compiled in one process and
timed in alternation, round by round, so that they see the same machine load:

- full: the step as training runs it;
- no weight gradients: every convolution's kernel gradient (`layers._kernel_gradient`) is
  replaced by a cheap function of the same shape that still reads its inputs;
- no transposed convolutions: every transposed convolution (the generator's layers and the
  discriminator's input gradients) computes a cheap linear map of the same shape instead;
- no divergence flag: the divergence guard's on-device check of the parameters is a constant.

The stubbed steps compute nonsense: they exist only to be timed. The differences of their median
step times from the full step's are what those convolutions cost inside the step (copies and
layout changes that XLA inserts for them included). Sets the XLA flags that training sets.
"""

import contextlib
import functools
import os
import statistics
import sys
from unittest import mock

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
from absl import app
from absl import flags

from benchmarks import step_timing
from facegan_jax.models import layers
from facegan_jax.system import xla_flags
from facegan_jax.training import divergence

flags.DEFINE_string('config', 'celeba', 'Config NAME[:variant] (configs/NAME.py) to time.')
flags.DEFINE_integer('batch_size', 64, 'Global batch size.')
FLAGS = flags.FLAGS


def _cheap_kernel_gradient(big, grad_small, kernel, stride, padding):
  del stride, padding
  return jnp.zeros_like(kernel) + jnp.mean(big) * jnp.mean(grad_small)


def _cheap_lowering(x, kernel):
  """A cheap linear stand-in for the strided convolution that a transposed one transposes."""
  del x, kernel

  def small_from_big(big, kernel, stride, padding):
    small = jax.eval_shape(functools.partial(layers.strided_conv, stride=stride,
                                             padding=padding), big, kernel)
    return jnp.broadcast_to(0.0 * jnp.sum(big), small.shape)
  return small_from_big


VARIANTS = {
    'full': contextlib.nullcontext,
    'no weight gradients': lambda: mock.patch.object(layers, '_kernel_gradient',
                                                     _cheap_kernel_gradient),
    'no transposed convolutions': lambda: mock.patch.object(layers, 'transpose_lowering',
                                                            _cheap_lowering),
    'no divergence flag': lambda: mock.patch.object(divergence, 'all_finite',
                                                    lambda *trees: jnp.asarray(True)),
}


def main(argv):
  del argv
  trainers, compiled, states, batches, times = {}, {}, {}, {}, {}
  for name, patch in VARIANTS.items():
    with patch():
      trainers[name], compiled[name], states[name], batches[name], _ = step_timing.compile_step(
          step_timing.load_config(FLAGS.config), FLAGS.batch_size)
    times[name] = []
  for _ in range(FLAGS.rounds):
    for name in VARIANTS:
      seconds, states[name] = step_timing.timed_steps(trainers[name], compiled[name],
                                                      states[name], batches[name], FLAGS.steps)
      times[name] += seconds
  medians = {name: statistics.median(seconds) for name, seconds in times.items()}
  print(f'{FLAGS.config}, batch {FLAGS.batch_size}, {jax.devices()[0].device_kind} '
        f'x{jax.device_count()}: median step time, ms')
  for name, median in medians.items():
    print(f"| {name} | {1e3 * median:.0f} | {1e3 * (medians['full'] - median):+.0f} saved |")


if __name__ == '__main__':
  xla_flags.add_speed_flags()
  app.run(main)
