"""The losses of the GAN game, computed from discriminator logits, and D's regulariser.

The game of Goodfellow et al. (2014): with D(x) = sigmoid(l), -log D(x) = softplus(-l) and
-log(1 - D(x)) = softplus(l), finite with finite gradients for any logit. The hinge loss of
Lim & Ye (2017) / Miyato et al. (2018), and the R1 penalty of Mescheder et al. (2018).
"""

import jax
import jax.numpy as jnp

from facegan_jax.errors import UserError


def discriminator_loss(real_logits, fake_logits):
  """J_D = -mean log D(x) - mean log(1 - D(G(z))). Logits: [B] -> scalar."""
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def discriminator_loss_hinge(real_logits, fake_logits):
  """mean max(0, 1 - D(x)) + mean max(0, 1 + D(G(z))), on raw logits."""
  return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def generator_loss_non_saturating(fake_logits):
  """J_G = -mean log D(G(z)): strong gradients while D still rejects the fakes."""
  return jnp.mean(jax.nn.softplus(-fake_logits))


def generator_loss_minimax(fake_logits):
  """J_G = mean log(1 - D(G(z))): the generator's side of the original minimax game."""
  return -jnp.mean(jax.nn.softplus(fake_logits))


def generator_loss_hinge(fake_logits):
  """-mean D(G(z)) on raw logits: the generator's side of the hinge game."""
  return -jnp.mean(fake_logits)


def r1_penalty(logits_fn, real):
  """R1 = mean over the batch of ||d logit / d x||^2 at the real images x [B, H, W, C].

  `logits_fn` maps images to [B] logits; D's loss adds gamma / 2 * R1.
  """
  grads = jax.grad(lambda x: jnp.sum(logits_fn(x)))(real)
  return jnp.mean(jnp.sum(jnp.square(grads), axis=tuple(range(1, grads.ndim))))


DISCRIMINATOR_LOSSES = {
    'logistic': discriminator_loss,
    'hinge': discriminator_loss_hinge,
}

GENERATOR_LOSSES = {
    'non_saturating': generator_loss_non_saturating,
    'minimax': generator_loss_minimax,
    'hinge': generator_loss_hinge,
}


def _lookup(table, field, name):
  if name not in table:
    raise UserError(f'config.loss.{field}={name!r} is unknown; use one of {sorted(table)}.')
  return table[name]


def get_discriminator_loss(name):
  """The discriminator loss called `name` (config.loss.discriminator)."""
  return _lookup(DISCRIMINATOR_LOSSES, 'discriminator', name)


def get_generator_loss(name):
  """The generator loss called `name` (config.loss.generator)."""
  return _lookup(GENERATOR_LOSSES, 'generator', name)
