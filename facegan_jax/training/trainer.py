"""The static parts of training (`Trainer`): models, optimisers, losses, regularisers and
augmentation, built once from the config; jit treats them as constants."""

from typing import Any, Callable, Optional

import flax
import ml_collections

from facegan_jax import models
from facegan_jax.sampling import generation
from facegan_jax.system.errors import UserError
from facegan_jax.training import ada
from facegan_jax.training import augment
from facegan_jax.training import ema
from facegan_jax.training import losses
from facegan_jax.training import optimizers
from facegan_jax.training import r3gan_schedules


def _static(**kwargs):
  return flax.struct.field(pytree_node=False, **kwargs)


@flax.struct.dataclass
class Trainer:
  """The static parts of training: models, optimisers, losses, regularisers, augmentation."""
  generator: Any = _static()
  discriminator: Any = _static()
  g_optimizer: Any = _static()
  d_optimizer: Any = _static()
  discriminator_loss: Callable = _static()
  generator_loss: Callable = _static()
  latent_dim: int = _static()
  random_flip: bool = _static()
  r1_gamma: float = _static(default=0.0)  # D's loss adds r1_gamma / 2 * R1 ...
  r1_every: int = _static(default=1)  # ... on every r1_every-th step, scaled by r1_every
  augment_policy: tuple[str, ...] = _static(default=())
  augment_strength: float = _static(default=0.0)
  # ADA: NVIDIA's augment pipe (None: off) and how its p evolves (TrainState.ada_*).
  augment_pipe: Optional[Any] = _static(default=None)
  ada_schedule: ada.Schedule = _static(default=ada.Schedule())
  ema_decay: float = _static(default=0.0)  # 0: no EMA generator
  sampling_params_field: str = _static(default='g_params')  # the weights that sample
  # True (Mimicry's SNGAN trainer): G's update draws its own latents and runs G and D afresh in
  # training mode, keeping D's spectral-norm vectors (and BatchNorm statistics) from that pass.
  # False (the DCGAN reference): it reuses the last D update's fakes and discards D's statistics.
  fresh_generator_pass: bool = _static(default=False)
  # True (NVIDIA's StyleGAN2 loop): G's update (and its path-length step) comes first, on a
  # pass of its own, and the D updates then see fakes of the updated G; G's running statistics
  # (the w average) come from the D updates' passes only, as the reference's update_emas.
  generator_first: bool = _static(default=False)
  ema_rampup: float = _static(default=0.0)  # EMA half-life <= ema_rampup * images seen; 0: off
  pl_weight: float = _static(default=0.0)  # G's path-length phase: pl_weight * penalty ...
  pl_every: int = _static(default=1)  # ... on every pl_every-th step, scaled by pl_every,
  pl_batch_shrink: int = _static(default=2)  # ... on batch / pl_batch_shrink latents
  pl_decay: float = _static(default=0.01)  # of the path lengths' running mean
  real_batches: int = _static(default=1)  # real batches per step: d_steps, or R3GAN's D's and G's
  # R3GAN's recipe (training/r3gan_step.py runs the step): its schedules of the image count; the
  # optimisers are `r3gan_schedules.adam()`. None: the step of training/step.py.
  r3gan_schedules: Any = _static(default=None)


def make_trainer(config: ml_collections.ConfigDict) -> Trainer:
  """Builds models, optimisers, losses and regularisers from a config that passed
  `config_check.check`; an R3GAN config's with R3GAN's optimisers and schedules."""
  generator, discriminator = models.build_models(config.model, config.train.compute_dtype)
  loss, halflife = config.loss, config.ema.halflife_images
  if loss.pl_weight and not hasattr(generator, 'styles'):
    raise UserError(f'config.loss.pl_weight={loss.pl_weight} needs a style-based generator '
                    "(config.model.name='stylegan2'); set it to 0 for this model.")
  trainer = Trainer(generator=generator, discriminator=discriminator,
                    g_optimizer=optimizers.make_adam(config, config.optim.g_learning_rate, 1,
                                                     loss.pl_every if loss.pl_weight else 1),
                    d_optimizer=optimizers.make_adam(config, config.optim.d_learning_rate,
                                                     config.train.d_steps,
                                                     loss.r1_every if loss.r1_gamma else 1),
                    discriminator_loss=losses.get_discriminator_loss(config.loss.discriminator),
                    generator_loss=losses.get_generator_loss(config.loss.generator),
                    latent_dim=config.model.latent_dim,
                    random_flip=config.data.random_flip,
                    r1_gamma=config.loss.r1_gamma, r1_every=config.loss.r1_every,
                    augment_policy=augment.parse_policy(config.augment.policy),
                    augment_strength=config.augment.strength,
                    augment_pipe=ada.pipe_settings(config.augment),
                    ada_schedule=ada.schedule_of(config.augment),
                    ema_decay=(ema.decay_per_step(config.train.batch_size, halflife)
                               if generation.uses_ema(config.ema) else 0.0),
                    sampling_params_field=generation.sampling_params_field(config.ema),
                    fresh_generator_pass=config.train.fresh_generator_pass,
                    generator_first=config.train.generator_first,
                    ema_rampup=config.ema.rampup, pl_weight=loss.pl_weight,
                    pl_every=loss.pl_every, pl_batch_shrink=loss.pl_batch_shrink,
                    pl_decay=loss.pl_decay, real_batches=config.train.d_steps)
  if config.model.name != 'r3gan':
    return trainer
  adam = r3gan_schedules.adam(config.optim.b1)
  return trainer.replace(g_optimizer=adam, d_optimizer=adam, real_batches=2,
                         r3gan_schedules=r3gan_schedules.from_config(config))
