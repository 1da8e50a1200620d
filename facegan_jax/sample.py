"""Faces from a checkpoint: python -m facegan_jax.sample --workdir=DIR [--step=N] --num=64 --seed=0.

Restores only the generator (its EMA params if the run kept them, else its params, and its
BatchNorm statistics) and the run's saved config, then writes a PNG grid of `--num` samples from
the latents of `--seed`, optionally each image as its own PNG, and with `--interpolate=S1,S2,...`
a strip of spherical interpolations between the latents of consecutive seeds. The same flags
give byte-identical PNGs.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app
from absl import flags

from facegan_jax import checkpointing
from facegan_jax import images as images_lib
from facegan_jax import models
from facegan_jax.errors import UserError
from facegan_jax.errors import exit_on_user_error

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Workdir of a training run (holds checkpoints/).')
flags.DEFINE_integer('step', None, 'Checkpoint step to sample from; default: the newest.')
flags.DEFINE_integer('num', 64, 'Number of samples in the grid.')
flags.DEFINE_integer('seed', 0, 'Seed of the sample latents.')
flags.DEFINE_string('out', 'samples.png', 'Path of the PNG grid.')
flags.DEFINE_string('images_dir', None, 'If set, also write each sample as DIR/NNNN.png.')
flags.DEFINE_list('interpolate', None, 'Seeds to interpolate between, e.g. 0,1,2: writes a '
                  'strip per consecutive pair to --interpolation_out.')
flags.DEFINE_integer('frames', 8, 'Images per interpolation strip, end points included.')
flags.DEFINE_string('interpolation_out', 'interpolation.png', 'Path of the interpolation PNG.')
flags.mark_flag_as_required('workdir')


class Sampler:
  """A generator restored from a checkpoint, in inference mode."""

  def __init__(self, workdir: str, step: int | None = None):
    manager = checkpointing.make_manager(workdir, create=False) if os.path.isdir(
        checkpointing.checkpoint_dir(workdir)) else None
    steps = sorted(manager.all_steps()) if manager else []
    if not steps:
      raise UserError(f'no checkpoint in {checkpointing.checkpoint_dir(workdir)}; train first '
                      f'(python -m facegan_jax.main --workdir={workdir} ...) or pass the '
                      'workdir of a run.')
    if step is None:
      step = steps[-1]
    elif step not in steps:
      raise UserError(f'no checkpoint of step {step} in {checkpointing.checkpoint_dir(workdir)}; '
                      f'steps there: {", ".join(map(str, steps))}.')
    self.step = step
    self.config = ml_collections.ConfigDict(checkpointing.restore_run(manager, step)['config'])
    self.generator, _ = models.build_models(self.config.model)
    z = jax.ShapeDtypeStruct((1, self.config.model.latent_dim), jnp.float32)
    abstract = jax.eval_shape(lambda z: self.generator.init(jax.random.key(0), z, train=False), z)
    # The EMA generator when the run kept one (it samples better), else the trained weights.
    params = 'g_ema_params' if self.config.ema.halflife_images else 'g_params'
    restored = checkpointing.restore_fields(
        manager, step, {params: abstract['params'],
                        'g_batch_stats': abstract.get('batch_stats', {})})
    self.variables = {'params': restored[params], 'batch_stats': restored['g_batch_stats']}
    self._apply = jax.jit(lambda v, z: self.generator.apply(v, z, train=False))

  def latents(self, seed: int, num: int) -> jax.Array:
    """[num, latent_dim] standard normal latents of `seed`."""
    return jax.random.normal(jax.random.key(seed), (num, self.config.model.latent_dim))

  def generate(self, latents) -> np.ndarray:
    """latents [N, latent_dim] -> uint8 images [N, H, W, C]."""
    return images_lib.to_uint8(jax.device_get(self._apply(self.variables, latents)))


def slerp(a, b, fractions):
  """Spherical interpolation between latents a, b [D] at `fractions` [F]: [F, D]."""
  cos = jnp.dot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b))
  omega = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
  t = jnp.asarray(fractions)[:, None]
  return (jnp.sin((1 - t) * omega) * a + jnp.sin(t * omega) * b) / jnp.sin(omega)


def interpolation_latents(sampler: Sampler, seeds, frames: int):
  """[(len(seeds) - 1) * frames, latent_dim]: one row of `frames` per consecutive seed pair."""
  ends = [sampler.latents(seed, 1)[0] for seed in seeds]
  fractions = np.linspace(0.0, 1.0, frames)
  return jnp.concatenate([slerp(a, b, fractions) for a, b in zip(ends[:-1], ends[1:])])


def write_samples(sampler: Sampler, out: str, num: int, seed: int, images_dir: str | None):
  """Writes the grid (and, if `images_dir`, each image); returns the uint8 images."""
  images = sampler.generate(sampler.latents(seed, num))
  images_lib.save_png(out, images_lib.make_grid(images))
  if images_dir:
    os.makedirs(images_dir, exist_ok=True)
    for index, image in enumerate(images):
      images_lib.save_png(os.path.join(images_dir, f'{index:04d}.png'), image)
  return images


def parse_seeds(values) -> list[int]:
  """--interpolate values -> seeds; UserError unless at least two integers."""
  if len(values) < 2 or not all(value.strip().lstrip('-').isdigit() for value in values):
    raise UserError(f'--interpolate={",".join(values)} needs two or more integer seeds, '
                    'e.g. --interpolate=0,1.')
  return [int(value) for value in values]


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  if FLAGS.num < 1 or FLAGS.frames < 2:
    raise UserError(f'--num={FLAGS.num} must be at least 1 and --frames={FLAGS.frames} at '
                    'least 2.')
  seeds = parse_seeds(FLAGS.interpolate) if FLAGS.interpolate is not None else None
  sampler = Sampler(FLAGS.workdir, FLAGS.step)
  write_samples(sampler, FLAGS.out, FLAGS.num, FLAGS.seed, FLAGS.images_dir)
  print(f'Wrote {FLAGS.out} ({FLAGS.num} samples of step {sampler.step}, seed {FLAGS.seed}).')
  if seeds:
    strip = sampler.generate(interpolation_latents(sampler, seeds, FLAGS.frames))
    images_lib.save_png(FLAGS.interpolation_out, images_lib.make_grid(strip, FLAGS.frames))
    print(f'Wrote {FLAGS.interpolation_out}.')


if __name__ == '__main__':
  app.run(main)
