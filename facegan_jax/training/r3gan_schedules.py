"""R3GAN's schedules: cosine decays of the hyper-parameters as pure functions of the image count.

Each quantity goes from `base` to `final` over the first `total_nimg` images seen,
value(n) = base + (1 - d)(final - base) with d = (1 + cos(pi n / total_nimg)) / 2, and stays at
`final` after (the reference's `cosine_decay_with_warmup` without warm-up or hold, which the
presets use). n is the number of images seen before the step. Python numbers give the
reference's float64 values exactly; jax arrays (e.g. inside jit) give the same function in their
dtype, with 1 - d computed as sin(pi n / 2T)^2 (no cancellation in float32 early on).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class Cosine(NamedTuple):
  """A cosine decay from `base` to `final` over `total_nimg` images."""
  base: float
  final: float
  total_nimg: float

  def __call__(self, nimg):
    if isinstance(nimg, jax.Array):
      rise = jnp.sin(jnp.pi / 2 * jnp.minimum(nimg / self.total_nimg, 1)) ** 2
      return self.base + rise * (self.final - self.base)
    if nimg > self.total_nimg:
      return self.final
    decay = 0.5 * (1 + math.cos(math.pi * nimg / self.total_nimg))
    return self.base + (1 - decay) * (self.final - self.base)


class Schedules(NamedTuple):
  """The scheduled hyper-parameters of one preset."""
  learning_rate: Cosine  # of both Adam optimisers
  beta2: Cosine  # Adam's second-moment decay (beta1 is 0)
  gamma: Cosine  # weight of R1 and R2: L_D += gamma / 2 (R1 + R2)
  ema_nimg: Cosine  # the EMA generator's half-life, in images
  augment_p: Cosine  # probability of each augmentation of D's inputs


class Values(NamedTuple):
  """The schedules' values at one image count."""
  learning_rate: float
  beta2: float
  gamma: float
  ema_nimg: float
  augment_p: float


def values_at(schedules: Schedules, nimg) -> Values:
  """Every schedule at `nimg` images seen."""
  return Values(*(schedule(nimg) for schedule in schedules))


def ema_beta(ema_nimg, batch_size):
  """The EMA generator's decay per step of `batch_size` images: 0.5^(batch / ema_nimg); 0 at
  ema_nimg = 0 (the EMA copies the generator)."""
  if isinstance(ema_nimg, jax.Array):
    return 0.5 ** (batch_size / jnp.maximum(ema_nimg, 1e-8))
  return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


def adam(b1=0.0):
  """The reference's optimiser of either network: Adam with beta1 = `b1` (the reference's: 0),
  eps = 1e-8 (after the bias-corrected square root), no weight decay; `with_values` sets its
  learning rate and beta2 before each step. Like torch's Adam, the bias correction 1 - beta2^t
  takes this step's beta2 with the full step count t, although earlier steps averaged with other
  values."""
  return optax.inject_hyperparams(optax.adam)(learning_rate=2e-4, b1=b1, b2=0.9, eps=1e-8)


def with_values(opt_state, values: Values):
  """`opt_state` of `adam()` whose next step uses the learning rate and beta2 of `values`."""
  return opt_state._replace(hyperparams=dict(
      opt_state.hyperparams, learning_rate=jnp.asarray(values.learning_rate, jnp.float32),
      b2=jnp.asarray(values.beta2, jnp.float32)))


def from_config(config) -> Schedules:
  """The schedules of an R3GAN run's config, over config.r3gan.schedule_images images: the
  learning rate from optim.g_learning_rate (= d_learning_rate) to r3gan.final_learning_rate,
  beta2 from optim.b2 to r3gan.final_b2, gamma from loss.r1_gamma to r3gan.final_gamma, the EMA
  half-life from 0 to ema.halflife_images. augment_p stays 0: the augment pipe's p lives in the
  train state, scheduled by config.augment (training/ada.py; use_r3gan in configs/celeba.py sets
  the preset's cosine there)."""
  total = config.r3gan.schedule_images
  return Schedules(Cosine(config.optim.g_learning_rate, config.r3gan.final_learning_rate, total),
                   Cosine(config.optim.b2, config.r3gan.final_b2, total),
                   Cosine(config.loss.r1_gamma, config.r3gan.final_gamma, total),
                   Cosine(0, config.ema.halflife_images, total), Cosine(0, 0, total))


def _preset(gamma, ema_nimg, augment_p, total_nimg):
  """Schedules of a preset: lr 2e-4 -> 5e-5 and beta2 0.9 -> 0.99 in all; `gamma` (base,
  final), ema_nimg and p from 0 to the value given."""
  return Schedules(Cosine(2e-4, 5e-5, total_nimg), Cosine(0.9, 0.99, total_nimg),
                   Cosine(*gamma, total_nimg), Cosine(0, ema_nimg, total_nimg),
                   Cosine(0, augment_p, total_nimg))


# The reference's presets (train.py).
PRESETS = {
    'FFHQ-64': _preset((2, 0.2), 5e5, 0.3, 2e7),
    'FFHQ-256': _preset((150, 15), 5e5, 0.3, 2e7),
    'CIFAR10': _preset((0.05, 0.005), 5e6, 0.55, 2e7),
    'ImageNet-32': _preset((0.5, 0.05), 5e7, 0.5, 2e8),
    'ImageNet-64': _preset((1, 0.1), 5e7, 0.4, 2e8),
}
