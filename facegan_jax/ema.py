"""Exponential moving average of the generator's parameters (Karras et al.'s 'G_ema')."""

import jax


def decay_per_step(batch_size: int, halflife_images: float) -> float:
  """The per-step decay whose weight halves every `halflife_images` training images."""
  return 0.5 ** (batch_size / halflife_images)


def update(ema_params, params, decay: float):
  """decay * ema + (1 - decay) * params, leaf by leaf."""
  return jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)
