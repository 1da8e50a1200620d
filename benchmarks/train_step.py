"""Speed of the train step: compile time, images/s, FLOPs, and the share of a matmul's FLOP/s.

  python benchmarks/train_step.py [--configs=celeba,lfw_demo]
      [--batch_sizes=64,128,256] [--compute_dtype=float32] [--rounds=6] [--steps=5]
      [--matmul_size=N]

For each config and batch size, the step of `train.compile_functions` (the one training runs:
state replicated and donated, batch sharded) is lowered and compiled on synthetic uint8 batches
(compile time), run 3 times to warm up, then timed step by step with `block_until_ready`:
images/s is the batch size over the median step time.

FLOPs per image: XLA's `cost_analysis` of the compiled step (it leaves out padding taps and the
zero gaps of transposed convolutions), and the hand count of `hand_flops_per_step`, which the
achieved FLOP/s and the share of the peak use. Peak: the FLOP/s of a square matmul in the
compute dtype (2048 on the CPU, 8192 on a GPU or TPU, where a small one measures launch latency),
timed between the rounds of steps in the same process so that both see the same machine load. On
a GPU both use JAX's default matmul precision (TF32 for float32 on recent NVIDIA GPUs).

The XLA flags that training sets (facegan_jax/xla_flags.py) are set here too, before JAX starts.
"""

import os
import statistics
import sys
import time

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import app
from absl import flags

from benchmarks import step_timing
from facegan_jax import layers
from facegan_jax import train
from facegan_jax import xla_flags
from facegan_jax.models import sngan

flags.DEFINE_list('configs', ['celeba', 'lfw_demo'],
                  'Configs NAME[:variant] (configs/NAME.py) whose model and training are timed.')
flags.DEFINE_list('batch_sizes', ['64', '128', '256'], 'Global batch sizes to time.')
flags.DEFINE_string('compute_dtype', 'float32', "config.train.compute_dtype: 'float32' or "
                    "'bfloat16'.")
flags.DEFINE_integer('matmul_size', 0, 'Side of the peak matmul; 0: 2048 on the CPU, 8192 on '
                     'accelerators.')
FLAGS = flags.FLAGS

CPU_MATMUL_SIZE, ACCELERATOR_MATMUL_SIZE = 2048, 8192
MATMULS_PER_ROUND = 5


def layer_flops(module, inputs) -> list[float]:
  """Forward FLOPs of every Dense, Conv and ConvTranspose call of `module` on `inputs`.

  Two FLOPs per multiply-add and every kernel tap counted, padding included: a convolution
  costs output pixels x k^2 x C_in x C_out, a transposed convolution input pixels x k^2 x C_in x
  C_out (each input pixel scatters the whole kernel), a dense layer rows x inputs x outputs.
  Shapes only: nothing is computed.
  """
  flops = []

  def record(next_fun, args, kwargs, context):
    outputs = next_fun(*args, **kwargs)
    layer, x = context.module, args[0]
    if context.method_name == '__call__':
      if isinstance(layer, (nn.Dense, sngan.Dense)):
        flops.append(2.0 * x.size * layer.features)
      elif isinstance(layer, (layers.Conv, sngan.Conv)):  # sngan.Conv: stride 1, same size
        flops.append(2.0 * outputs.size * layer.kernel_size**2 * x.shape[-1])
      elif isinstance(layer, layers.ConvTranspose):
        flops.append(2.0 * x.size * layer.kernel_size**2 * layer.features)
    return outputs

  def run(inputs):
    variables = module.init(jax.random.key(0), inputs, train=False)
    with nn.intercept_methods(record):
      return module.apply(variables, inputs, train=True, mutable=['batch_stats'])

  jax.eval_shape(run, inputs)
  return flops


def hand_flops_per_step(trainer: train.Trainer, image_shape, batch_size: int,
                        d_steps: int) -> float:
  """FLOPs of one train step as the PyTorch DCGAN reference computes it, counted by hand.

  A backward pass costs twice its forward pass (input and weight gradients), less the input
  gradient of a first layer whose input needs none. Each D update: G forward, then D forward
  and backward on the real batch and on the detached fakes; the G update: D forward and backward
  on the fakes (the reference also computes D's weight gradients there; this project's step
  does not, so it needs 1 x D less), then G backward; with trainer.fresh_generator_pass (Mimicry)
  the G update runs its own G forward too. 2.48 GFLOP per image for DCGAN-64.
  """
  g = layer_flops(trainer.generator, jnp.zeros((1, trainer.latent_dim)))
  d = layer_flops(trainer.discriminator, jnp.zeros((1,) + tuple(image_shape)))
  g_all, d_all = sum(g), sum(d)
  d_update = g_all + 2 * (3 * d_all - d[0])
  g_update = 3 * d_all + 2 * g_all - g[0] + (g_all if trainer.fresh_generator_pass else 0)
  return batch_size * (d_steps * d_update + g_update)


_square = jax.jit(lambda a: a @ a)


def matmul_size() -> int:
  if FLAGS.matmul_size:
    return FLAGS.matmul_size
  return CPU_MATMUL_SIZE if jax.default_backend() == 'cpu' else ACCELERATOR_MATMUL_SIZE


def matmul_flops_per_second(reps: int, dtype) -> list[float]:
  """FLOP/s of `reps` square matmuls of side `matmul_size()` in `dtype`, timed one by one."""
  size = matmul_size()
  x = jax.random.normal(jax.random.key(0), (size, size), jnp.float32).astype(dtype)
  _square(x).block_until_ready()
  rates = []
  for _ in range(reps):
    start = time.perf_counter()
    _square(x).block_until_ready()
    rates.append(2.0 * size**3 / (time.perf_counter() - start))
  return rates


def time_step(config, batch_size: int) -> dict:
  """Compiles and times the train step of `config` at `batch_size`; returns the table row."""
  trainer, compiled, state, batch, compile_seconds = step_timing.compile_step(
      config, batch_size, FLAGS.compute_dtype)
  step_seconds, peaks = [], []
  for _ in range(FLAGS.rounds):
    seconds, state = step_timing.timed_steps(compiled, state, batch, FLAGS.steps)
    step_seconds += seconds
    peaks += matmul_flops_per_second(MATMULS_PER_ROUND, trainer.generator.dtype)

  seconds = statistics.median(step_seconds)
  image_shape = batch.shape[2:]
  hand = hand_flops_per_step(trainer, image_shape, batch_size, config.train.d_steps)
  peak = statistics.median(peaks)
  return dict(compile_s=compile_seconds, images_per_s=batch_size / seconds,
              xla_gflop=compiled.cost_analysis()['flops'] / batch_size / 1e9,
              hand_gflop=hand / batch_size / 1e9, achieved=hand / seconds / 1e9,
              peak=peak / 1e9, share=hand / seconds / peak)


HEADER = ('| config | batch | dtype | compile (s) | images/s | XLA GFLOP/img | hand GFLOP/img '
          '| hand GFLOP/s | matmul GFLOP/s | share of matmul |')


def main(argv):
  del argv
  print(f"{jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, peak: {matmul_size()}^2 matmul")
  print(HEADER)
  print('|' + ' --- |' * (HEADER.count('|') - 1))
  for name in FLAGS.configs:
    for batch_size in map(int, FLAGS.batch_sizes):
      row = time_step(step_timing.load_config(name), batch_size)
      print(f"| {name} | {batch_size} | {FLAGS.compute_dtype} | {row['compile_s']:.1f} "
            f"| {row['images_per_s']:.1f} | {row['xla_gflop']:.2f} | {row['hand_gflop']:.2f} "
            f"| {row['achieved']:.0f} | {row['peak']:.0f} | {100 * row['share']:.0f}% |",
            flush=True)


if __name__ == '__main__':
  xla_flags.add_speed_flags()
  app.run(main)
