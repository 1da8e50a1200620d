"""Augmentations on the device: the random flip of real images, and differentiable augmentation
(DiffAugment, Zhao et al. 2020) for training GANs on few images.

The same random transformations are applied to real and generated images wherever D sees them,
in the discriminator and the generator updates, so D cannot tell them apart by the augmentation
and G gets gradients through it. Every operation is differentiable in the pixels, draws its
randomness only from the key it is given, and is the identity at strength 0. Images are
[B, H, W, C] float in [-1, 1]; regions moved or cut in are filled with 0 (mid-grey).
"""

import jax
import jax.numpy as jnp
from jax import lax

from facegan_jax.system.errors import UserError

TRANSLATION_RATIO = 0.125  # largest shift, as a fraction of the image side, at strength 1
CUTOUT_RATIO = 0.5  # side of the cut square, as a fraction of the image side, at strength 1


def random_flip(key, images):
  """Flips each image of [..., B, H, W, C] left-right with probability 1/2 (real images only:
  config.data.random_flip, a dataset augmentation rather than DiffAugment)."""
  flip = jax.random.bernoulli(key, 0.5, images.shape[:-3])
  return jnp.where(flip[..., None, None, None], images[..., ::-1, :], images)


def _uniform(key, images, low, high):
  """One factor per example, broadcastable to [B, H, W, C]."""
  return jax.random.uniform(key, (images.shape[0], 1, 1, 1), minval=low, maxval=high)


def color(key, images, strength):
  """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5), scaled by strength."""
  k_brightness, k_saturation, k_contrast = jax.random.split(key, 3)
  images = images + strength * _uniform(k_brightness, images, -0.5, 0.5)
  # x + s * f * (x - mean) scales the distance to the mean by 1 + s * f, and is exactly x at s=0.
  mean = images.mean(axis=3, keepdims=True)
  images = images + strength * _uniform(k_saturation, images, -1.0, 1.0) * (images - mean)
  mean = images.mean(axis=(1, 2, 3), keepdims=True)
  return images + strength * _uniform(k_contrast, images, -0.5, 0.5) * (images - mean)


def translation(key, images, strength):
  """Shifts each image by whole pixels, up to TRANSLATION_RATIO * strength of its side."""
  _, height, width, _ = images.shape
  pad_h = int(height * TRANSLATION_RATIO * strength + 0.5)
  pad_w = int(width * TRANSLATION_RATIO * strength + 0.5)
  k_y, k_x = jax.random.split(key)
  shift_y = jax.random.randint(k_y, (images.shape[0],), -pad_h, pad_h + 1)
  shift_x = jax.random.randint(k_x, (images.shape[0],), -pad_w, pad_w + 1)
  padded = jnp.pad(images, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))

  def shift(image, dy, dx):  # output[i, j] = image[i - dy, j - dx]
    return lax.dynamic_slice(image, (pad_h - dy, pad_w - dx, 0), images.shape[1:])

  return jax.vmap(shift)(padded, shift_y, shift_x)


def cutout(key, images, strength):
  """Zeroes one square of side CUTOUT_RATIO * strength of the image at a random place."""
  batch, height, width, _ = images.shape
  size_h = int(height * CUTOUT_RATIO * strength + 0.5)
  size_w = int(width * CUTOUT_RATIO * strength + 0.5)
  k_y, k_x = jax.random.split(key)
  center_y = jax.random.randint(k_y, (batch, 1, 1), 0, height + (1 - size_h % 2))
  center_x = jax.random.randint(k_x, (batch, 1, 1), 0, width + (1 - size_w % 2))
  top, left = center_y - size_h // 2, center_x - size_w // 2  # may stick out of the image
  rows = jnp.arange(height)[None, :, None]
  cols = jnp.arange(width)[None, None, :]
  inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
  return images * (~inside)[..., None].astype(images.dtype)


OPERATIONS = {'color': color, 'translation': translation, 'cutout': cutout}


def parse_policy(policy: str) -> tuple[str, ...]:
  """'color,translation,cutout' -> ('color', 'translation', 'cutout'); '' -> (); UserError else."""
  names = tuple(name.strip() for name in policy.split(',') if name.strip())
  unknown = [name for name in names if name not in OPERATIONS]
  if unknown:
    raise UserError(f'config.augment.policy={policy!r} names unknown operation(s) {unknown}; '
                    f'use a comma-separated subset of {list(OPERATIONS)}, or \'\' for none.')
  return names


def augment(key, images, policy: tuple[str, ...], strength: float):
  """Applies the operations of `policy` in order, each with its own key from `key`."""
  for name, op_key in zip(policy, jax.random.split(key, max(len(policy), 1))):
    images = OPERATIONS[name](op_key, images, strength)
  return images
