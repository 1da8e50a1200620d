"""A generator restored from a checkpoint, for sampling and evaluation.

Restores only the generator (its EMA params if the run kept them, else its params, and its
BatchNorm statistics) and the run's saved config. Latents of a seed and spherical
interpolations between them are pure functions of the seed.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from facegan_jax import checkpointing
from facegan_jax import images as images_lib
from facegan_jax import models
from facegan_jax.errors import UserError


class Sampler:
  """A generator restored from a checkpoint, in inference mode.

  `truncation` < 1 (StyleGAN2 only) pulls every w towards the run's tracked average w
  (the truncation trick): better-looking, less varied faces.
  """

  def __init__(self, workdir: str, step: int | None = None, truncation: float = 1.0):
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
    if truncation != 1 and self.config.model.name != 'stylegan2':
      raise UserError(f'--truncation={truncation} needs a StyleGAN2 run; this one is '
                      f'{self.config.model.name!r} (leave --truncation at 1).')
    kwargs = {'truncation_psi': truncation} if truncation != 1 else {}
    self._apply = jax.jit(lambda v, z: self.generator.apply(v, z, train=False, **kwargs))

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
