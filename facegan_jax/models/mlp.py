"""The tiny dense generator and discriminator of the 2x2 'slanted faces' toy."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from facegan_jax.system.errors import UserError


class MLPGenerator(nn.Module):
  """z: [B, latent_dim] -> images: [B, resolution, resolution, channels] in [-1, 1]."""
  resolution: int
  channels: int
  hidden: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train):
    del train  # no BatchNorm: same function in training and sampling
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(z))
    x = nn.Dense(self.resolution * self.resolution * self.channels, dtype=self.dtype)(x)
    x = jnp.tanh(x).astype(jnp.float32)
    return x.reshape(z.shape[0], self.resolution, self.resolution, self.channels)


class MLPDiscriminator(nn.Module):
  """images: [B, H, W, C] in [-1, 1] -> logits: [B]."""
  hidden: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images, train):
    del train
    x = images.reshape(images.shape[0], -1)
    x = nn.leaky_relu(nn.Dense(self.hidden, dtype=self.dtype)(x), 0.2)
    return nn.Dense(1, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)


def check_config(model):
  """Raises UserError unless the dense layers have a width (config.model.hidden)."""
  if model.hidden < 1:
    raise UserError(f'config.model.hidden={model.hidden!r} is out of range; use the width of '
                    "the 'mlp' models' dense layers, at least 1 (e.g. 16).")


def build(model, dtype):
  """(generator, discriminator) of the toy's `config.model`, computing in `dtype`."""
  return (MLPGenerator(model.resolution, model.channels, model.hidden, dtype),
          MLPDiscriminator(model.hidden, dtype))
