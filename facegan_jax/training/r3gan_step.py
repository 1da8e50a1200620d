"""R3GAN's train step (Huang et al., 2024): one iteration of brownvc/R3GAN's training loop.

At n = state.step * B images seen before the step (B the global batch):
1. every hyper-parameter at n (`trainer.r3gan_schedules`): the learning rate, Adam's beta2,
   gamma and the EMA half-life;
2. D's phase: fakes of the current G on latents of their own, then one Adam step of D on
   mean softplus(D(fake) - D(real)) + gamma / 2 (R1 + R2), both penalties at every step with
   their second-order terms (r3gan_loss);
3. G's phase, on a real batch and latents of its own: one Adam step of G on
   mean softplus(D(real) - D(G(z))) through the updated D;
4. G_ema <- beta G_ema + (1 - beta) G with beta = 0.5^(B / half-life): 0 at n = 0, where the EMA
   becomes G;
5. with the augment pipe on (the reference's --aug=1): p for the next step (`ada.update`, the
   cosine schedule of config.augment in R3GAN's presets).
Both optimisers are `r3gan_schedules.adam()`, given this step's learning rate and beta2 before
their update; nothing is clipped, scaled or lazy. With the pipe on, D sees every batch (reals and
fakes, in both phases) through it at p = state.ada_p, each batch with draws of its own, and R1
and R2 are taken with respect to the images before augmentation. Step t draws its flips,
latents and augmentations from fold_in(state.key, t), so a run is a pure function of the config
and the data.

In a conditional run (config.model.c_dim > 0) each phase's fakes take the labels of that phase's
reals, sample n paired with sample n (the reference's pairing): D's phase scores D(real_0, c_0)
against D(G(z_0, c_0), c_0), G's phase D(real_1, c_1) against D(G(z_1, c_1), c_1); no labels are
drawn for the fakes. The flip and the augment pipe leave labels unchanged.
"""

import jax
import jax.numpy as jnp
import optax

from facegan_jax.data import images as images_lib
from facegan_jax.training import augment
from facegan_jax.training import augment_step
from facegan_jax.training import divergence
from facegan_jax.training import ema
from facegan_jax.training import optimizers
from facegan_jax.training import r3gan_loss
from facegan_jax.training import r3gan_schedules
from facegan_jax.training.state import TrainState
from facegan_jax.training.trainer import Trainer


def _logits_fn(trainer: Trainer, params, p, key, labels):
  """D's logits [N] of images [N, H, W, C] as D sees them: through the augment pipe at
  probability p with `key`'s draws when the pipe is on (R3GAN has no DiffAugment policy: with
  the pipe off D sees the images themselves), conditioned on `labels` [N, c_dim] (None if
  unconditional)."""
  def logits(images):
    images = augment_step.discriminator_view(trainer, key, images, p)
    return trainer.discriminator.apply({'params': params}, images, c=labels)
  return logits


def update(trainer: Trainer, state: TrainState, real, latents, augment_key, labels=None):
  """One iteration from `state` on real images [2, B, H, W, C] in [-1, 1] and latents
  [2, B, latent_dim], slice 0 for D's phase and 1 for G's; `augment_key` draws the pipe's
  augmentations (unused with the pipe off); `labels` [2, B, c_dim] are the reals' in a
  conditional run (each phase's fakes take its reals' labels), else None.

  Returns (new state, metrics): d_loss (mean of D's adversarial term), r1, r2 (means), g_loss,
  d_grad_norm, g_grad_norm (global L2 norms of the gradients each Adam step received),
  augment_p (this step's p, with the pipe on) and params_finite (`divergence`).
  """
  batch_size = real.shape[1]
  values = r3gan_schedules.values_at(trainer.r3gan_schedules,
                                     state.step.astype(jnp.float32) * batch_size)
  d_labels, g_labels = (None, None) if labels is None else labels
  generate = lambda params, z, c: trainer.generator.apply({'params': params}, z, c=c)
  # D's view of D's phase's reals and fakes, then of G's phase's.
  d_real_key, d_fake_key, g_real_key, g_fake_key = jax.random.split(augment_key, 4)
  logits_fn = lambda params, key, c: _logits_fn(trainer, params, state.ada_p, key, c)

  fakes = generate(state.g_params, latents[0], d_labels)
  (_, d_terms), d_grads = jax.value_and_grad(
      lambda p: r3gan_loss.discriminator_loss(logits_fn(p, d_real_key, d_labels), real[0],
                                              fakes, values.gamma,
                                              logits_fn(p, d_fake_key, d_labels)),
      has_aux=True)(state.d_params)
  d_params, d_opt_state = optimizers.apply_step(
      trainer.d_optimizer, state.d_params,
      r3gan_schedules.with_values(state.d_opt_state, values), d_grads)

  (g_loss, _), g_grads = jax.value_and_grad(
      lambda p: r3gan_loss.generator_loss(logits_fn(d_params, g_real_key, g_labels), real[1],
                                          generate(p, latents[1], g_labels),
                                          logits_fn(d_params, g_fake_key, g_labels)),
      has_aux=True)(state.g_params)
  g_params, g_opt_state = optimizers.apply_step(
      trainer.g_optimizer, state.g_params,
      r3gan_schedules.with_values(state.g_opt_state, values), g_grads)

  g_ema_params = state.g_ema_params
  if trainer.ema_decay:  # the run keeps an EMA generator
    beta = r3gan_schedules.ema_beta(values.ema_nimg, batch_size)
    g_ema_params = ema.update(g_ema_params, g_params, beta)
  state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                        g_opt_state=g_opt_state, d_opt_state=d_opt_state,
                        g_ema_params=g_ema_params)
  metrics = {'d_loss': d_terms.adversarial.mean(), 'r1': d_terms.r1.mean(),
             'r2': d_terms.r2.astype(jnp.float32).mean(), 'g_loss': g_loss,
             'd_grad_norm': optax.tree.norm(d_grads), 'g_grad_norm': optax.tree.norm(g_grads),
             divergence.PARAMS_FINITE: divergence.all_finite(g_params, d_params, g_ema_params)}
  if trainer.augment_pipe is not None:
    state, augment_metrics = augment_step.next_p(trainer, state, batch_size)
    metrics.update(augment_metrics)
  return state, metrics


def train_step(trainer: Trainer, state: TrainState, batch, phases):
  """`update` on batch [2, B, H, W, C] uint8 (D's real images, then G's; in a conditional run the
  pair (those images, their labels [2, B, c_dim] float32)), each image flipped with probability
  1/2 if trainer.random_flip (the reference's --mirror), with standard normal latents and the
  pipe's augmentations, all drawn from fold_in(state.key, state.step).
  `phases` is `step.lazy_phases`'s, always empty here: R3GAN regularises at every step."""
  del phases
  batch, labels = batch if isinstance(batch, tuple) else (batch, None)
  step_key = jax.random.fold_in(state.key, state.step)
  flip_key, latent_key = jax.random.split(step_key)
  # From a stream of its own, so that the keys above stay those of runs without augmentation.
  augment_key = jax.random.fold_in(step_key, 1)
  real = images_lib.to_model_range(batch)
  if trainer.random_flip:
    real = augment.random_flip(flip_key, real)
  latents = jax.random.normal(latent_key, batch.shape[:2] + (trainer.latent_dim,))
  return update(trainer, state, real, latents, augment_key, labels)
