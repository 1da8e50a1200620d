"""R3GAN's loss (Huang et al., 2024): the relativistic pairing GAN loss with R1 and R2.

Sample n of the real batch is paired with sample n of the fake batch (the same labels). With
s_r = D(real) and s_f = D(fake), [N] each:

  L_G = mean_n softplus(s_r - s_f),  real images constant, gradients through D into the fakes;
  L_D = mean_n [softplus(s_f - s_r) + gamma / 2 (R1_n + R2_n)],  real and fake images constant,

with R1_n = ||d(sum_m s_r,m) / d real_n||^2 and R2_n the same on the fakes, both at every step.
The parameter gradient of L_D includes the penalties' second-order terms. Everything here is a
pure function of `logits_fn`, D's apply function closed over its parameters (and labels):
images [N, H, W, C] -> logits [N], and of `fake_logits_fn`, the same for the fakes where D sees
them otherwise (augmented with draws of their own; default `logits_fn`); the caller
differentiates with respect to the parameters.
"""

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

LogitsFn = Callable[[jax.Array], jax.Array]


class DiscriminatorTerms(NamedTuple):
  """The per-sample terms of L_D, each [N]."""
  adversarial: jax.Array  # softplus(s_f - s_r)
  relativistic_logits: jax.Array  # s_r - s_f
  r1: jax.Array
  r2: jax.Array


class GeneratorTerms(NamedTuple):
  """The per-sample terms of L_G, each [N]."""
  adversarial: jax.Array  # softplus(s_r - s_f)
  relativistic_logits: jax.Array  # s_f - s_r


def logits_and_gradient_norms(logits_fn: LogitsFn, images):
  """(D(images) [N], ||d(sum D(images)) / d images_n||^2 [N]), the logits and one gradient
  computed in one pass. The norms are in the images' dtype, as the reference's (R2 of
  bfloat16 fakes is bfloat16): squares in that dtype, summed in float32."""
  logits, vjp = jax.vjp(logits_fn, images)
  (gradient,) = vjp(jnp.ones_like(logits))
  norms = jnp.sum(jnp.square(gradient), axis=tuple(range(1, gradient.ndim)), dtype=jnp.float32)
  return logits, norms.astype(gradient.dtype)


def discriminator_terms(logits_fn: LogitsFn, real, fake,
                        fake_logits_fn: Optional[LogitsFn] = None) -> DiscriminatorTerms:
  """L_D's per-sample terms on real and fake images [N, H, W, C] (both held constant)."""
  real_logits, r1 = logits_and_gradient_norms(logits_fn, jax.lax.stop_gradient(real))
  fake_logits, r2 = logits_and_gradient_norms(fake_logits_fn or logits_fn,
                                              jax.lax.stop_gradient(fake))
  relativistic = real_logits - fake_logits
  return DiscriminatorTerms(jax.nn.softplus(-relativistic), relativistic, r1, r2)


def discriminator_loss(logits_fn: LogitsFn, real, fake, gamma,
                       fake_logits_fn: Optional[LogitsFn] = None):
  """(L_D scalar, DiscriminatorTerms): mean of softplus(s_f - s_r) + gamma / 2 (R1 + R2)."""
  terms = discriminator_terms(logits_fn, real, fake, fake_logits_fn)
  per_sample = terms.adversarial + gamma / 2 * (terms.r1 + terms.r2)
  return jnp.mean(per_sample), terms


def generator_loss(logits_fn: LogitsFn, real, fake, fake_logits_fn: Optional[LogitsFn] = None):
  """(L_G scalar, GeneratorTerms): mean of softplus(s_r - s_f); the real images constant, the
  fakes differentiable (D's parameters are whatever the logits functions close over)."""
  relativistic = (fake_logits_fn or logits_fn)(fake) - logits_fn(jax.lax.stop_gradient(real))
  adversarial = jax.nn.softplus(-relativistic)
  return jnp.mean(adversarial), GeneratorTerms(adversarial, relativistic)
