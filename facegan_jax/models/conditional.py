"""Label conditioning of DCGAN and SNGAN (Miyato & Koyama 2018, 'cGANs with Projection
Discriminator'): conditional BatchNorm in the generator, a projection in the discriminator.

Labels are float32 [B, c_dim]: one-hot class ids or 0/1 attribute vectors
(`data.image_sources.model_labels`). Both pieces are linear in the labels, so a one-hot label
selects one row (the per-class embedding of the paper) and an attribute vector sums the rows of
its attributes that are on.

- Conditional BatchNorm: the features are normalised without an affine of their own, then
  scaled and shifted per label, `x * (1 + c @ W_scale) + c @ W_offset`, W_scale ~ N(0, 0.02) and
  W_offset = 0 at the start (a one-hot label: scale N(1, 0.02) and offset 0, as the paper's and
  Mimicry's per-class embeddings start).
- Projection discriminator: `D(x, c) = psi(phi(x)) + <phi(x), c @ V>`, phi(x) the features
  before D's last linear layer psi, V [c_dim, features] (spectrally normalised where D is).
"""

import flax.linen as nn
import jax.numpy as jnp

SCALE_STD = 0.02


def check_labels(c, c_dim: int):
  """ValueError unless `c` is [B, c_dim] when the network is conditional (c_dim > 0)."""
  if c_dim and (c is None or c.ndim != 2 or c.shape[-1] != c_dim):
    raise ValueError(f'this network is conditional: pass labels c of shape [B, {c_dim}].')


class LabelAffine(nn.Module):
  """x [B, ..., C] -> x * (1 + c @ W_scale) + c @ W_offset, per example; c [B, c_dim]."""

  @nn.compact
  def __call__(self, x, c):
    shape = (c.shape[-1], x.shape[-1])
    w_scale = self.param('scale', nn.initializers.normal(SCALE_STD), shape)
    w_offset = self.param('offset', nn.initializers.zeros, shape)
    broadcast = (c.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    scale = (1.0 + c @ w_scale).reshape(broadcast)
    offset = (c @ w_offset).reshape(broadcast)
    return (x.astype(jnp.float32) * scale + offset).astype(x.dtype)


def project(features, embedded):
  """The projection term <phi(x), c @ V> per example: features, embedded [B, F] -> [B]."""
  return jnp.sum(features.astype(jnp.float32) * embedded.astype(jnp.float32), axis=-1)
