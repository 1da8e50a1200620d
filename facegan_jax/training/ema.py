"""Exponential moving average of the generator's parameters (Karras et al.'s 'G_ema')."""

import math

import jax
import jax.numpy as jnp


def decay_per_step(batch_size: int, halflife_images: float) -> float:
  """The per-step decay whose weight halves every `halflife_images` training images."""
  return 0.5 ** (batch_size / halflife_images)


def update(ema_params, params, decay: float):
  """decay * ema + (1 - decay) * params, leaf by leaf."""
  return jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)


def ramped_decay(decay: float, batch_size: int, rampup: float, images_seen):
  """`decay` with its half-life capped at rampup * images_seen (StyleGAN2-ADA's EMA ramp-up):
  0 at the first step (the EMA starts as the weights), `decay` once the cap is passed."""
  halflife = batch_size * math.log(0.5) / math.log(decay)
  capped = jnp.minimum(halflife, rampup * jnp.asarray(images_seen, jnp.float32))
  return 0.5 ** (batch_size / jnp.maximum(capped, 1e-8))
