"""The losses of the GAN game (Goodfellow et al., 2014), computed from discriminator logits.

With D(x) = sigmoid(l): -log D(x) = softplus(-l) and -log(1 - D(x)) = softplus(l), which stay
finite and have finite gradients for any logit.
"""

import jax
import jax.numpy as jnp

from facegan_jax.errors import UserError


def discriminator_loss(real_logits, fake_logits):
  """J_D = -mean log D(x) - mean log(1 - D(G(z))). Logits: [B] -> scalar."""
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def generator_loss_non_saturating(fake_logits):
  """J_G = -mean log D(G(z)): strong gradients while D still rejects the fakes."""
  return jnp.mean(jax.nn.softplus(-fake_logits))


def generator_loss_minimax(fake_logits):
  """J_G = mean log(1 - D(G(z))): the generator's side of the original minimax game."""
  return -jnp.mean(jax.nn.softplus(fake_logits))


GENERATOR_LOSSES = {
    'non_saturating': generator_loss_non_saturating,
    'minimax': generator_loss_minimax,
}


def get_generator_loss(name):
  """Returns the generator loss called `name` (config.loss.generator)."""
  if name not in GENERATOR_LOSSES:
    raise UserError(f'config.loss.generator={name!r} is unknown; '
                    f'use one of {sorted(GENERATOR_LOSSES)}.')
  return GENERATOR_LOSSES[name]
