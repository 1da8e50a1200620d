"""DCGAN (Radford et al., 2015) at any power-of-two resolution from 16 to 256: the generator maps a
Gaussian latent through a dense layer to 4x4 features and doubles the resolution with stride-2
transposed convolutions (BatchNorm + ReLU) up to a tanh image in [-1, 1]; the discriminator
mirrors it with stride-2 convolutions and LeakyReLU(0.2), no normalisation on its input layer,
and one logit out. Weights start from N(0, 0.02), BatchNorm scales from N(1, 0.02).

With c_dim > 0 (labels c [B, c_dim]) both are conditional (`conditional`): the generator's
BatchNorms are conditional BatchNorms, the discriminator adds the projection of its flattened
last features onto the labels' embedding.
"""

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from facegan_jax.models import conditional
from facegan_jax.models import layers
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import check_power_of_two

MIN_RESOLUTION, MAX_RESOLUTION = 16, 256
BASE_RESOLUTION = 4  # the generator's first feature map is 4x4, the discriminator's last
MAX_WIDTH_MULTIPLIER = 8  # DCGAN-64 uses widths w, 2w, 4w, 8w; larger models repeat 8w
G_NORMALIZATIONS = ('batch', 'none')
D_NORMALIZATIONS = ('batch', 'none', 'spectral')

_weight_init = nn.initializers.normal(0.02)


def _scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _normalize(kind, train, dtype):
  """BatchNorm with PyTorch's momentum (0.1 there, 0.9 here) and DCGAN's init, or nothing."""
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        scale_init=_scale_init, dtype=dtype)
  return lambda x: x


def _normalize_conditional(train, dtype, c):
  """BatchNorm without its own affine, then the per-label one (`conditional.LabelAffine`)."""
  batch_norm = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                            use_scale=False, use_bias=False, dtype=dtype)
  return lambda x: conditional.LabelAffine()(batch_norm(x), c)


def num_stages(resolution):
  """Number of factor-2 resolution changes between 4x4 and `resolution`."""
  return int(math.log2(resolution // BASE_RESOLUTION))


def width_multipliers(resolution):
  """Channel multipliers of the feature maps from 4x4 upwards, e.g. 64 -> (8, 4, 2, 1)."""
  stages = num_stages(resolution)
  return tuple(min(2**(stages - 1 - i), MAX_WIDTH_MULTIPLIER) for i in range(stages))


class DCGANGenerator(nn.Module):
  """z: [B, latent_dim] (and labels c [B, c_dim] if c_dim > 0) -> images: [B, resolution,
  resolution, channels] float in [-1, 1]."""
  resolution: int
  channels: int
  width: int
  norm: str
  dtype: Any = jnp.float32
  c_dim: int = 0

  @nn.compact
  def __call__(self, z, train, c=None):
    conditional.check_labels(c, self.c_dim)
    normalize = (functools.partial(_normalize_conditional, c=c) if self.c_dim
                 else functools.partial(_normalize, self.norm))
    multipliers = width_multipliers(self.resolution)
    use_bias = self.norm == 'none'
    first = multipliers[0] * self.width
    x = nn.Dense(BASE_RESOLUTION * BASE_RESOLUTION * first, use_bias=use_bias,
                 kernel_init=_weight_init, dtype=self.dtype)(z)
    x = x.reshape(z.shape[0], BASE_RESOLUTION, BASE_RESOLUTION, first)
    x = nn.relu(normalize(train, self.dtype)(x))
    for multiplier in multipliers[1:]:
      x = layers.ConvTranspose(multiplier * self.width, use_bias=use_bias,
                               kernel_init=_weight_init, dtype=self.dtype)(x)
      x = nn.relu(normalize(train, self.dtype)(x))
    x = layers.ConvTranspose(self.channels, kernel_init=_weight_init, dtype=self.dtype)(x)
    return jnp.tanh(x).astype(jnp.float32)


class DCGANDiscriminator(nn.Module):
  """images: [B, resolution, resolution, channels] in [-1, 1] (and labels c [B, c_dim] if
  c_dim > 0) -> logits: [B] float32.

  norm 'spectral' divides every weight by its largest singular value (Miyato et al., 2018),
  estimated by one power iteration per training call; the iteration vectors live in the
  'batch_stats' collection beside BatchNorm's statistics.
  """
  resolution: int
  width: int
  norm: str
  dtype: Any = jnp.float32
  c_dim: int = 0

  def _layer(self, layer, x, train):
    if self.norm == 'spectral':
      return nn.SpectralNorm(layer)(x, update_stats=train)
    return layer(x)

  @nn.compact
  def __call__(self, images, train, c=None):
    conditional.check_labels(c, self.c_dim)
    x = images
    for i, multiplier in enumerate(reversed(width_multipliers(self.resolution))):
      conv = layers.Conv(multiplier * self.width, use_bias=self.norm != 'batch',
                         kernel_init=_weight_init, dtype=self.dtype)
      x = self._layer(conv, x, train)
      if i > 0:
        x = _normalize(self.norm, train, self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
    x = x.reshape(x.shape[0], -1)
    logits = self._layer(nn.Dense(1, use_bias=False, kernel_init=_weight_init, dtype=self.dtype),
                         x, train)[:, 0].astype(jnp.float32)
    if self.c_dim:
      embedding = nn.Dense(x.shape[-1], use_bias=False, kernel_init=_weight_init,
                           dtype=self.dtype, name='projection')
      logits = logits + conditional.project(x, self._layer(embedding, c, train))
    return logits


def check_config(model):
  """Raises UserError naming the bad field of a DCGAN `config.model`."""
  check_power_of_two('model.resolution', model.resolution, MIN_RESOLUTION, MAX_RESOLUTION)
  for field, allowed in (('g_norm', G_NORMALIZATIONS), ('d_norm', D_NORMALIZATIONS)):
    if model[field] not in allowed:
      raise UserError(f'config.model.{field}={model[field]!r} is unknown; '
                      f'use one of {allowed}.')
  c_dim = model.get('c_dim', 0)  # 0 in a model config without the field
  if c_dim and model.g_norm != 'batch':
    raise UserError(f"config.model.c_dim={c_dim} conditions DCGAN's generator through "
                    f"its BatchNorms; set config.model.g_norm='batch' (not {model.g_norm!r}).")


def build(model, dtype):
  """(generator, discriminator) of a DCGAN `config.model`, computing in `dtype`."""
  c_dim = model.get('c_dim', 0)  # 0 in a model config without the field
  return (DCGANGenerator(model.resolution, model.channels, model.g_width, model.g_norm, dtype,
                         c_dim),
          DCGANDiscriminator(model.resolution, model.d_width, model.d_norm, dtype, c_dim))
