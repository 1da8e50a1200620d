"""The losses of the GAN game, computed from discriminator logits, and the regularisers.

The game of Goodfellow et al. (2014): with D(x) = sigmoid(l), -log D(x) = softplus(-l) and
-log(1 - D(x)) = softplus(l), finite with finite gradients for any logit. The hinge loss of
Lim & Ye (2017) / Miyato et al. (2018), the R1 penalty of Mescheder et al. (2018), and
StyleGAN2's path-length penalty (Karras et al., 2020).
"""

import jax
import jax.numpy as jnp

from facegan_jax.system.errors import UserError


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



def path_length_noise(key, images_shape):
  """The path-length regulariser's random image-space direction: N(0, 1) / sqrt(H * W),
  shape `images_shape` [B, H, W, C]."""
  height, width = images_shape[1:3]
  return jax.random.normal(key, images_shape) / jnp.sqrt(float(height * width))


def path_lengths(synthesize, ws, noise):
  """||J_w^T y|| per sample (StyleGAN2's path length), [B].

  `synthesize` maps ws [B, num_ws, w_dim] to images [B, H, W, C]; `noise` y has the images'
  shape. The gradient of sum(images * y) with respect to the broadcast ws is summed over w_dim
  and averaged over the styles, then square-rooted, as the reference.
  """
  grads = jax.grad(lambda ws: jnp.sum(synthesize(ws) * noise))(ws)
  return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1))


def path_length_penalty(lengths, pl_mean, decay=0.01):
  """((lengths - new mean)^2 [B], new mean): the running mean moves by `decay` towards the
  batch mean first, and the penalty differentiates through it, as the reference."""
  new_mean = pl_mean + decay * (jnp.mean(lengths) - pl_mean)
  return jnp.square(lengths - new_mean), jax.lax.stop_gradient(new_mean)

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
