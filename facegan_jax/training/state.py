"""The train state: one pytree with everything a run needs to continue bit-exactly, and its
creation from the run's root key (`generation`'s key streams), optionally starting from
networks trained elsewhere (`start_from`)."""

from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp

from facegan_jax.sampling import generation
from facegan_jax.training import ada
from facegan_jax.training.trainer import Trainer


@flax.struct.dataclass
class TrainState:
  """Everything that a run needs to continue bit-exactly (the data position is `step`)."""
  step: jax.Array  # int32 scalar: number of completed train steps
  key: jax.Array  # typed PRNG key: base of every step's randomness
  g_params: Any
  g_batch_stats: Any
  d_params: Any
  d_batch_stats: Any
  g_opt_state: Any
  d_opt_state: Any
  g_ema_params: Any  # moving average of g_params; {} when config.ema is off
  pl_mean: jax.Array  # float32 scalar: decaying mean of the path lengths (StyleGAN2); 0 if off
  # ADA (training/ada.py), float32 scalars: the augment pipe's p for the next step, and the sum
  # and count of the signs of D's logits on reals since the controller's last update.
  ada_p: jax.Array
  ada_sign_sum: jax.Array
  ada_count: jax.Array


class InitialNetworks(NamedTuple):
  """Networks a run starts from (facegan_jax.pretrained reads them from NVIDIA's files): the
  generator's {'params', 'batch_stats'}, the EMA generator's params, and the discriminator's
  {'params'} ({} when there is none to start from)."""
  generator: dict
  ema_params: dict
  discriminator: dict


def start_from(trainer: Trainer, state: TrainState, networks: InitialNetworks) -> TrainState:
  """`state` (a new run's step 0) holding `networks`: their weights and statistics (the EMA's
  only if the run keeps an EMA; D stays `state`'s without one), with fresh optimiser states.
  The step, the key and the path-length mean stay `state`'s, as for a run from scratch."""
  g_params = networks.generator['params']
  d_params = networks.discriminator['params'] if networks.discriminator else state.d_params
  return state.replace(
      g_params=g_params, g_batch_stats=networks.generator['batch_stats'],
      g_opt_state=trainer.g_optimizer.init(g_params), d_params=d_params,
      d_opt_state=trainer.d_optimizer.init(d_params),
      g_ema_params=networks.ema_params if trainer.ema_decay else {})


def create_train_state(trainer: Trainer, key: jax.Array, image_shape) -> TrainState:
  """Initial state from the run's root key; `image_shape` is (H, W, C)."""
  g_key, d_key = jax.random.split(jax.random.fold_in(key, generation.INIT_STREAM))
  z = jnp.zeros((1, trainer.latent_dim), jnp.float32)
  c_dim = getattr(trainer.generator, 'c_dim', 0)
  labels = {'c': jnp.zeros((1, c_dim), jnp.float32)} if c_dim else {}  # a conditional run's
  g_vars = trainer.generator.init(g_key, z, train=False, **labels)
  d_vars = trainer.discriminator.init(d_key, jnp.zeros((1,) + tuple(image_shape)), train=False,
                                      **labels)
  g_params, d_params = g_vars['params'], d_vars['params']
  return TrainState(
      step=jnp.zeros((), jnp.int32), key=jax.random.fold_in(key, generation.TRAIN_STREAM),
      g_params=g_params, g_batch_stats=g_vars.get('batch_stats', {}),
      d_params=d_params, d_batch_stats=d_vars.get('batch_stats', {}),
      g_opt_state=trainer.g_optimizer.init(g_params),
      d_opt_state=trainer.d_optimizer.init(d_params),
      g_ema_params=g_params if trainer.ema_decay else {}, pl_mean=jnp.zeros((), jnp.float32),
      **ada_fields(ada.initial_state(trainer.ada_schedule)))


def ada_fields(ada_state: ada.AdaState) -> dict[str, jax.Array]:
  """TrainState's fields holding `ada_state`."""
  return {'ada_p': ada_state.p, 'ada_sign_sum': ada_state.sign_sum,
          'ada_count': ada_state.count}


def ada_state_of(state: TrainState) -> ada.AdaState:
  return ada.AdaState(state.ada_p, state.ada_sign_sum, state.ada_count)
