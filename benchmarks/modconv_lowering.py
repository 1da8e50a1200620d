"""The two lowerings of StyleGAN2's modulated convolution, timed on this backend.

  python benchmarks/modconv_lowering.py [--batch=32] [--shapes=64x32,128x16,512x8] [--reps=20]

'grouped' builds per-sample weights and runs one convolution with `batch` groups (NVIDIA's
fused form); 'scaled' scales the activations by the styles before a shared-weight convolution
and by the demodulation coefficients after it (the unfused form). Both are timed forward and
backward (the gradient of the sum with respect to the input, weight and styles), for the 3x3
convolution at a resolution and the upsampling one into it, alternating the lowerings in each
repetition so that both see the same machine load; the table gives medians and their ratio.
`facegan_jax.models.stylegan2.AUTO_LOWERING` takes the faster one per backend.
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

from facegan_jax.models import stylegan2_ops as ops
from facegan_jax.system import xla_flags

flags.DEFINE_integer('batch', 32, 'Samples per call.')
flags.DEFINE_list('shapes', ['64x32', '128x16', '512x8'], 'CHANNELSxRESOLUTION of the outputs.')
flags.DEFINE_integer('reps', 20, 'Timed calls per lowering and shape.')
FLAGS = flags.FLAGS


def gradient_function(lowering, up):
  """jit of the gradients of sum(modulated_conv2d) with respect to (x, weight, styles)."""
  fir = ops.setup_filter()

  def total(x, weight, styles, noise):
    return jnp.sum(ops.modulated_conv2d(x, weight, styles, fir, noise, up=up, padding=1,
                                        lowering=lowering))
  return jax.jit(jax.grad(total, argnums=(0, 1, 2)))


def inputs(channels, resolution, up):
  keys = jax.random.split(jax.random.key(0), 4)
  size = resolution // up
  return (jax.random.normal(keys[0], (FLAGS.batch, size, size, channels)),
          jax.random.normal(keys[1], (3, 3, channels, channels)),
          jax.random.normal(keys[2], (FLAGS.batch, channels)) + 1.0,
          jax.random.normal(keys[3], (FLAGS.batch, resolution, resolution, 1)))


def time_once(function, args):
  start = time.perf_counter()
  jax.block_until_ready(function(*args))
  return time.perf_counter() - start


def main(argv):
  del argv
  print(f'{jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}, '
        f'batch {FLAGS.batch}, forward + backward, median of {FLAGS.reps}')
  print('| layer | channels | resolution | grouped (ms) | scaled (ms) | grouped / scaled |')
  print('| --- | --- | --- | --- | --- | --- |')
  for shape in FLAGS.shapes:
    channels, resolution = map(int, shape.split('x'))
    for up, layer in ((1, '3x3'), (2, '3x3 up')):
      args = inputs(channels, resolution, up)
      functions = {name: gradient_function(name, up) for name in ops.MODCONV_LOWERINGS}
      times = {name: [] for name in functions}
      for function in functions.values():
        time_once(function, args)  # compile and warm up
      for _ in range(FLAGS.reps):
        for name, function in functions.items():
          times[name].append(time_once(function, args))
      grouped, scaled = (1e3 * statistics.median(times[name]) for name in ('grouped', 'scaled'))
      print(f'| {layer} | {channels} | {resolution} | {grouped:.2f} | {scaled:.2f} '
            f'| {grouped / scaled:.2f} |', flush=True)


if __name__ == '__main__':
  xla_flags.add_speed_flags()
  app.run(main)
