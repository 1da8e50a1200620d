"""Speed of the train step: compile time, images/s, FLOPs, and the share of a matmul's FLOP/s.

  python benchmarks/train_step.py [--configs=celeba,lfw_demo]
      [--batch_sizes=64,128,256] [--compute_dtype=float32] [--rounds=6] [--steps=5]
      [--matmul_size=N]

For each config and batch size, the step of `step_lib.compile_functions` (the one training runs:
state replicated and donated, batch sharded) is lowered and compiled on synthetic uint8 batches
(compile time), run 3 times to warm up, then timed step by step with `block_until_ready`:
images/s is the batch size over the median step time.

FLOPs per image: XLA's `cost_analysis` of the compiled step (it leaves out padding taps and the
zero gaps of transposed convolutions), and the hand count of `hand_flops_per_step`, which the
achieved FLOP/s and the share of the peak use. Peak: the FLOP/s of a square matmul in the
compute dtype (2048 on the CPU, 8192 on a GPU or TPU, where a small one measures launch latency),
timed between the rounds of steps in the same process so that both see the same machine load. On
a GPU both use JAX's default matmul precision (TF32 for float32 on recent NVIDIA GPUs).

Convolutions: how many each compiled program's optimised HLO holds (in brackets those with a
feature or batch group count above 1: grouped convolutions and their weight gradients), i.e. how
XLA lowered the step's forward passes, gradients and gradients of gradients.

The XLA flags that training sets (facegan_jax/system/xla_flags.py) are set here too, before JAX starts.
"""

import ast
import math
import os
import re
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
from facegan_jax.models import layers
from facegan_jax.models import r3gan
from facegan_jax.models import sngan
from facegan_jax.models import stylegan2
from facegan_jax.system import xla_flags
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib

flags.DEFINE_list('configs', ['celeba', 'lfw_demo'],
                  'Configs NAME[:variant] (configs/NAME.py) whose model and training are timed.')
flags.DEFINE_list('batch_sizes', ['64', '128', '256'], 'Global batch sizes to time.')
flags.DEFINE_string('compute_dtype', 'float32', "config.train.compute_dtype: 'float32' or "
                    "'bfloat16'.")
flags.DEFINE_list('overrides', [], "Config fields set in every config, 'FIELD=VALUE' (e.g. "
                  "'model.resolution=32').")
flags.DEFINE_list('lazy_regularisers', ['on'], "'on': the configs as they are; 'off': with "
                  'loss.r1_gamma and loss.pl_weight at 0 (rows only for configs that have them).')
flags.DEFINE_integer('matmul_size', 0, 'Side of the peak matmul; 0: 2048 on the CPU, 8192 on '
                     'accelerators.')
FLAGS = flags.FLAGS

CPU_MATMUL_SIZE, ACCELERATOR_MATMUL_SIZE = 2048, 8192
MATMULS_PER_ROUND = 5


def layer_flops(module, inputs, within=None) -> list[float]:
  """Forward FLOPs of every dense and convolution call of `module` on `inputs` in training
  mode (only those inside its submodule `within`, if given).

  Two FLOPs per multiply-add and every kernel tap counted, padding included: a convolution
  costs output pixels x k^2 x C_in x C_out, a transposed convolution (and StyleGAN2's upsampling
  3x3, one) input pixels x k^2 x C_in x C_out (each input pixel scatters the whole kernel), a
  dense layer rows x inputs x outputs. StyleGAN2's modulated convolutions count as the
  convolutions they modulate (their style dense layers separately); modulation, demodulation,
  FIR filters, noise and activations are not counted. Shapes only: nothing is computed.
  """
  flops = []

  def record(next_fun, args, kwargs, context):
    outputs = next_fun(*args, **kwargs)
    layer = context.module
    if context.method_name != '__call__' or within not in (None, *layer.scope.path[:1]):
      return outputs
    x = args[0]
    if isinstance(layer, (nn.Dense, sngan.Dense, stylegan2.Dense)):
      flops.append(2.0 * x.size * layer.features)
    elif isinstance(layer, (layers.Conv, sngan.Conv, stylegan2.Conv)):
      flops.append(2.0 * outputs.size * layer.kernel_size**2 * x.shape[-1])
    elif isinstance(layer, layers.ConvTranspose):
      flops.append(2.0 * x.size * layer.kernel_size**2 * layer.features)
    elif isinstance(layer, stylegan2.SynthesisLayer):  # same-size, or transposed with up = 2
      flops.append(2.0 * x.size * 9 * layer.features)
    elif isinstance(layer, stylegan2.ToRGB):
      flops.append(2.0 * x.size * layer.channels)
    elif isinstance(layer, r3gan.Conv):  # grouped: each output sees C_in / groups inputs
      flops.append(2.0 * outputs.size * layer.kernel_size**2 * x.shape[-1] / layer.groups)
    elif isinstance(layer, (r3gan.GenerativeBasis, r3gan.Embedding)):
      flops.append(2.0 * x.size * layer.features)
    elif isinstance(layer, r3gan.DiscriminativeBasis):  # depthwise 4x4, then the linear map
      flops.append(2.0 * x.size + 2.0 * x.shape[0] * x.shape[-1] * layer.features)
    return outputs

  def run(inputs):
    variables = module.init(jax.random.key(0), inputs, train=False)
    with nn.intercept_methods(record):
      return module.apply(variables, inputs, train=True, mutable=['batch_stats'],
                          rngs={'noise': jax.random.key(1)})

  jax.eval_shape(run, inputs)
  return flops


def hand_flops_per_step(trainer: trainer_lib.Trainer, image_shape, batch_size: int,
                        d_steps: int) -> float:
  """FLOPs of one train step as the reference implementation computes it, counted by hand.

  A backward pass costs twice its forward pass (input and weight gradients), less the input
  gradient of a first layer whose input needs none. DCGAN (the PyTorch reference) and SNGAN
  (Mimicry): each D update runs G forward, then D forward and backward on the real batch and on
  the detached fakes; the G update D forward and backward on the fakes (the references also
  compute D's weight gradients there; this project's step does not, so it needs 1 x D less),
  then G backward; with trainer.fresh_generator_pass (Mimicry) the G update runs its own G
  forward too. 2.48 GFLOP per image for DCGAN-64. StyleGAN2: see `stylegan2_flops_per_image`.
  R3GAN: `r3gan_flops_per_image`.
  """
  if hasattr(trainer.generator, 'styles'):
    return batch_size * stylegan2_flops_per_image(trainer, image_shape)
  if trainer.r3gan_schedules is not None:
    return batch_size * r3gan_flops_per_image(trainer, image_shape)
  g = layer_flops(trainer.generator, jnp.zeros((1, trainer.latent_dim)))
  d = layer_flops(trainer.discriminator, jnp.zeros((1,) + tuple(image_shape)))
  g_all, d_all = sum(g), sum(d)
  d_update = g_all + 2 * (3 * d_all - d[0])
  g_update = 3 * d_all + 2 * g_all - g[0] + (g_all if trainer.fresh_generator_pass else 0)
  return batch_size * (d_steps * d_update + g_update)


def stylegan2_flops_per_image(trainer: trainer_lib.Trainer, image_shape) -> float:
  """FLOPs per image of one StyleGAN2 step as NVIDIA's training loop runs its phases.

  G's main phase: G forward (the mapping twice, for style mixing), D forward and its input
  gradient only (D's weights are frozen there), G backward. D's main phase: G forward, D forward
  and backward on the fakes and on the reals. A regulariser's phase, on its steps only (so
  1 / every of it per step): the path length on batch / pl_batch_shrink latents is the mapping
  forward and backward, and the synthesis network's forward, its gradient with respect to the
  ws, and the backward of both (twice their 2 x F), 6 x F_synthesis; R1 is D forward, its input
  gradient, and the backward of both, 6 x F_D.
  """
  z = jnp.zeros((1, trainer.latent_dim))
  mapping = layer_flops(trainer.generator, z, within='mapping')
  g_all = sum(layer_flops(trainer.generator, z))
  synthesis = g_all - sum(mapping)
  # The first layer of each mapping pass has no input gradient.
  first_layers = mapping[0] * len(mapping) // trainer.generator.mapping_layers
  d = layer_flops(trainer.discriminator, jnp.zeros((1,) + tuple(image_shape)))
  d_all = sum(d)
  g_main = 3 * g_all - first_layers + 2 * d_all
  d_main = g_all + 2 * (3 * d_all - d[0])
  path_length = ((3 * sum(mapping) - first_layers + 6 * synthesis) / trainer.pl_batch_shrink
                 / trainer.pl_every if trainer.pl_weight else 0.0)
  r1 = 6 * d_all / trainer.r1_every if trainer.r1_gamma else 0.0
  return g_main + d_main + path_length + r1


def r3gan_flops_per_image(trainer: trainer_lib.Trainer, image_shape) -> float:
  """FLOPs per image of one R3GAN step as brownvc/R3GAN's loop runs its two phases, with F_G and
  F_D the forward passes (the augment pipe and the resamplers' filters not counted).

  D's phase: G forward on its latents; then for the reals and for the fakes alike, D forward,
  its input gradient (R1, R2) and the backward of both for D's weights, 6 x F_D each (the loss's
  gradient rides on the same backward). G's phase on a batch of its own: G forward, D forward on
  its fakes and reals, D's input gradient on the fakes, G backward: 3 x F_G + 3 x F_D, less the
  input gradient of G's first layer. 4 x F_G + 15 x F_D in all.
  """
  g = layer_flops(trainer.generator, jnp.zeros((1, trainer.latent_dim)))
  d_all = sum(layer_flops(trainer.discriminator, jnp.zeros((1,) + tuple(image_shape))))
  return 4 * sum(g) - g[0] + 15 * d_all


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
  # A step's time (and XLA's FLOPs) is the mean over whole cycles of the lazy regularisers.
  cycle = step_timing.lazy_cycle(trainer)
  steps = cycle * math.ceil(FLAGS.steps / cycle)
  xla_flops = statistics.mean(compiled[step_lib.lazy_phases(trainer, i)].cost_analysis()['flops']
                              for i in range(cycle))
  convolutions = [convolutions_in(program) for program in compiled.values()]
  step_seconds, peaks = [], []
  for _ in range(FLAGS.rounds):
    seconds, state = step_timing.timed_steps(trainer, compiled, state, batch, steps)
    step_seconds += [sum(seconds[i:i + cycle]) / cycle for i in range(0, steps, cycle)]
    peaks += matmul_flops_per_second(MATMULS_PER_ROUND, trainer.generator.dtype)

  seconds = statistics.median(step_seconds)
  image_shape = batch.shape[2:]
  hand = hand_flops_per_step(trainer, image_shape, batch_size, config.train.d_steps)
  peak = statistics.median(peaks)
  return dict(compile_s=compile_seconds, images_per_s=batch_size / seconds,
              xla_gflop=xla_flops / batch_size / 1e9,
              hand_gflop=hand / batch_size / 1e9, achieved=hand / seconds / 1e9,
              peak=peak / 1e9, share=hand / seconds / peak,
              convolutions=' + '.join(f'{total} ({grouped})' for total, grouped in convolutions))


def convolutions_in(compiled) -> tuple[int, int]:
  """(convolutions, grouped ones) in a compiled program's optimised HLO: how XLA lowered the
  step's forward passes, gradients and gradients of gradients."""
  lines = [line for line in compiled.as_text().splitlines() if ' convolution(' in line]
  grouped = [line for line in lines if re.search(r'(feature|batch)_group_count=([2-9]|\d\d)',
                                                  line)]
  return len(lines), len(grouped)


def configs_to_time():
  """(row name, config) of every --configs entry with --overrides, for each --lazy_regularisers
  setting that applies to it."""
  for name in FLAGS.configs:
    for regularisers in FLAGS.lazy_regularisers:
      config = step_timing.load_config(name)
      config.update_from_flattened_dict(dict(map(parse_override, FLAGS.overrides)))
      label = ', '.join([name] + FLAGS.overrides)
      if regularisers == 'off':
        if not config.loss.r1_gamma and not config.loss.pl_weight:
          continue
        config.loss.r1_gamma = config.loss.pl_weight = 0.0
        label += ', no R1 or path length'
      yield label, config


def parse_override(text: str):
  """'FIELD=VALUE' -> (FIELD, the Python literal VALUE, or the string if it is none)."""
  field, _, value = text.partition('=')
  try:
    return field, ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return field, value


HEADER = ('| config | batch | dtype | compile (s) | images/s | XLA GFLOP/img | hand GFLOP/img '
          '| hand GFLOP/s | matmul GFLOP/s | share of matmul | convolutions (grouped) in HLO |')


def main(argv):
  del argv
  print(f"{jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, peak: {matmul_size()}^2 matmul")
  print(HEADER)
  print('|' + ' --- |' * (HEADER.count('|') - 1))
  for name, config in configs_to_time():
    for batch_size in map(int, FLAGS.batch_sizes):
      row = time_step(config, batch_size)
      print(f"| {name} | {batch_size} | {FLAGS.compute_dtype} | {row['compile_s']:.1f} "
            f"| {row['images_per_s']:.1f} | {row['xla_gflop']:.2f} | {row['hand_gflop']:.2f} "
            f"| {row['achieved']:.0f} | {row['peak']:.0f} | {100 * row['share']:.0f}% "
            f"| {row['convolutions']} |",
            flush=True)


if __name__ == '__main__':
  xla_flags.add_speed_flags()
  app.run(main)
