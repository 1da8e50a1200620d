"""The augmentation of both train steps (training/step.py, training/r3gan_step.py): what D sees
of a batch, and the augment pipe's p after a step."""

import jax.numpy as jnp

from facegan_jax.training import ada
from facegan_jax.training import augment
from facegan_jax.training import augment_pipe
from facegan_jax.training import state as state_lib
from facegan_jax.training.state import TrainState
from facegan_jax.training.trainer import Trainer


def discriminator_view(trainer: Trainer, key, images, p):
  """D's view of images [B, H, W, C]: DiffAugment's policy, or NVIDIA's augment pipe at
  probability p (the step's TrainState.ada_p), with `key`'s randomness; the images themselves
  with neither."""
  if trainer.augment_pipe is not None:
    return augment_pipe.augment_with_key(key, images.astype(jnp.float32), p,
                                         trainer.augment_pipe)
  return augment.augment(key, images, trainer.augment_policy, trainer.augment_strength)


def next_p(trainer: Trainer, state: TrainState, batch_size):
  """After a step with the pipe on (state.step already counts it, of batch_size images each):
  the state holding p for the next step (`ada.update`), and the metric augment_p (this step's
  p)."""
  updated = ada.update(trainer.ada_schedule, state_lib.ada_state_of(state), state.step,
                       state.step * batch_size, batch_size)
  return state.replace(**state_lib.ada_fields(updated)), {'augment_p': state.ada_p}
