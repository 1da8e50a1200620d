"""Perceptual path length (Karras et al. 2019, StyleGAN; as stylegan2-ada-pytorch measures it).

For each sample: two latents z0, z1 ~ N(0, I) and t (0 for sampling 'end', U(0, 1) for 'full').
In W: w(t) = lerp(w(z0), w(z1), t), the images of w(t) and w(t + epsilon); in Z: slerp(z0, z1, t)
and slerp(z0, z1, t + epsilon), mapped to w (StyleGAN2) or drawn (DCGAN, SNGAN). StyleGAN2's
constant noise maps are redrawn for each batch (the pair of a sample shares them). The images
are cropped to the face (rows 3/8 to 7/8, columns 2/8 to 6/8 of the side, when `crop`),
box-downsampled to 256 when larger, repeated to RGB when grayscale, and the sample's path length
is LPIPS(image(t), image(t + epsilon)) / epsilon**2. PPL is the mean of the lengths between their
1st percentile (numpy's 'lower') and their 99th ('higher'), both included.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from facegan_jax.metrics import lpips
from facegan_jax.sampling import projector
from facegan_jax.system.errors import UserError


def slerp(a: jax.Array, b: jax.Array, t: jax.Array) -> jax.Array:
  """Spherical interpolation between rows of a, b [N, D] at t [N] (any norms: the directions
  are interpolated on the unit sphere, as StyleGAN's PPL does)."""
  a = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
  b = b / jnp.linalg.norm(b, axis=-1, keepdims=True)
  d = jnp.sum(a * b, axis=-1, keepdims=True)
  p = t[:, None] * jnp.arccos(jnp.clip(d, -1.0, 1.0))
  c = b - d * a
  c = c / jnp.linalg.norm(c, axis=-1, keepdims=True)
  return a * jnp.cos(p) + c * jnp.sin(p)


def face_crop(images: jax.Array) -> jax.Array:
  """[N, H, H, C] -> the face's [N, H / 2, H / 2, C]: rows 3/8..7/8, columns 2/8..6/8."""
  c = images.shape[1] // 8
  return images[:, 3 * c:7 * c, 2 * c:6 * c]


def path_lengths(key: jax.Array, batch: int, latent_dim: int, *, space: str, sampling: str,
                 epsilon: float, crop: bool, map_fn: Callable | None,
                 synthesize_fn: Callable, distance_fn: Callable) -> jax.Array:
  """[batch] path lengths of one batch (traceable: jit it with its static arguments bound).

  map_fn(z [M, latent_dim]) -> w [M, ...] (None when the generator has no w space);
  synthesize_fn(latents [2 * batch, ...], noise_key) -> images [2 * batch, H, W, C] in [-1, 1]
  from w (space 'w', or 'z' with map_fn) or z (no map_fn); distance_fn(a, b) -> [batch].
  """
  t_key, z_key, noise_key = jax.random.split(key, 3)
  t = jax.random.uniform(t_key, (batch,)) * (1.0 if sampling == 'full' else 0.0)
  z0, z1 = jnp.split(jax.random.normal(z_key, (2 * batch, latent_dim)), 2)
  if space == 'w':
    w0, w1 = jnp.split(map_fn(jnp.concatenate([z0, z1])), 2)
    weight = t.reshape((batch,) + (1,) * (w0.ndim - 1))
    latents = jnp.concatenate([w0 + (w1 - w0) * weight, w0 + (w1 - w0) * (weight + epsilon)])
  else:
    latents = jnp.concatenate([slerp(z0, z1, t), slerp(z0, z1, t + epsilon)])
    if map_fn is not None:
      latents = map_fn(latents)
  images = synthesize_fn(latents, noise_key)
  if crop:
    images = face_crop(images)
  first, second = jnp.split(projector.lpips_input(images), 2)
  return distance_fn(first, second) / epsilon**2


def filtered_mean(lengths: np.ndarray) -> float:
  """The mean of the lengths between their 1st ('lower') and 99th ('higher') percentiles."""
  lengths = np.asarray(lengths, np.float64)
  low = np.percentile(lengths, 1, method='lower')
  high = np.percentile(lengths, 99, method='higher')
  return float(lengths[(lengths >= low) & (lengths <= high)].mean())


def lpips_distance(params) -> Callable:
  """distance_fn of LPIPS with `params` (lpips.load's)."""
  return lambda a, b: lpips.distance(params, a, b)


def compute(key: jax.Array, num_samples: int, batch: int, latent_dim: int, **kwargs) -> float:
  """PPL over num_samples samples (batches of `batch`, the last one cut) with `path_lengths`'s
  keyword arguments."""
  step = jax.jit(lambda key: path_lengths(key, batch, latent_dim, **kwargs))
  lengths = [step(jax.random.fold_in(key, index))
             for index in range(-(-num_samples // batch))]
  return filtered_mean(np.concatenate(jax.device_get(lengths))[:num_samples])


def check_applies(model, eval_config):
  """UserError for a conditional generator (its labels are not drawn here), or when
  config.eval.ppl_space is 'w' for a generator without one (not StyleGAN2)."""
  if model.get('c_dim', 0):
    raise UserError(f'PPL of a conditional run (config.model.c_dim={model.c_dim}) is not '
                    'computed here; leave config.eval.ppl and --ppl off for it.')
  if model.name != 'stylegan2' and eval_config.ppl_space == 'w':
    raise UserError(f'config.eval.ppl_space=\'w\' needs a StyleGAN2 run; this one is '
                    f'{model.name!r}: set --config.eval.ppl_space=z.')


def of_generator(generator, variables, model, eval_config, seed: int, lpips_params) -> dict:
  """{'ppl', 'ppl_space', 'ppl_sampling', 'ppl_samples', 'ppl_epsilon', 'ppl_crop'} of a
  restored generator (`variables` its sampling variables, `model` config.model) under
  config.eval's ppl fields, the latents drawn from `seed`, distances by LPIPS with
  `lpips_params` (lpips.load's). UserError where `check_applies` says."""
  check_applies(model, eval_config)
  space = eval_config.ppl_space
  if model.name != 'stylegan2':
    # Slerp stays on the unit sphere: z of a prior without a normalising mapping is put back
    # on the shell of radius sqrt(latent_dim) where N(0, I) puts it.
    map_fn = None
    synthesize_fn = lambda z, _: generator.apply(
        variables, z * np.sqrt(model.latent_dim), train=False)
  else:
    map_fn = lambda z: generator.apply(variables, z, method='map')

    def synthesize_fn(ws, noise_key):
      maps = projector.random_noise(variables['batch_stats'], noise_key)
      return generator.apply(projector.with_noise(variables, maps), ws, method='synthesize')
  settings = dict(space=space, sampling=eval_config.ppl_sampling,
                  epsilon=eval_config.ppl_epsilon, crop=eval_config.ppl_crop)
  value = compute(jax.random.key(seed), eval_config.ppl_samples,
                  min(eval_config.batch_size, eval_config.ppl_samples), model.latent_dim,
                  map_fn=map_fn, synthesize_fn=synthesize_fn,
                  distance_fn=lpips_distance(lpips_params), **settings)
  return dict(ppl=value, ppl_samples=eval_config.ppl_samples,
              **{f'ppl_{key}': item for key, item in settings.items()})
