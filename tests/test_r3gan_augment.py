"""R3GAN's step with NVIDIA's augment pipe (the reference's --aug=1, ../shared/fixtures/r3gan/
README sections 2-3): D sees every batch through the pipe at p = state.ada_p, R1 and R2 are
taken with respect to the images before augmentation, and p follows the cosine schedule. The
fixtures record no augmentation: tests/test_r3gan_training.py checks the step without it."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import lfw_demo
from facegan_jax.training import augment_step
from facegan_jax.training import r3gan_step
from facegan_jax.training import state as state_lib
from facegan_jax.training import trainer as trainer_lib

BATCH = 8
COSINE_IMAGES = 24.0  # p: 0 -> 0.3 over 3 steps of BATCH images


@pytest.fixture(scope='module')
def setup():
  """lfw_demo's r3gan_test trainer (the pipe on, p's cosine over COSINE_IMAGES), its initial
  state, a batch of reals [2, B, 8, 8, 1] and latents, and its `update` jitted."""
  config = lfw_demo.get_config('r3gan_test')
  config.augment.cosine_images = COSINE_IMAGES
  trainer = trainer_lib.make_trainer(config)
  state = state_lib.create_train_state(trainer, jax.random.key(0), (8, 8, 1))
  real = jax.random.uniform(jax.random.key(1), (2, BATCH, 8, 8, 1), minval=-1, maxval=1)
  latents = jax.random.normal(jax.random.key(2), (2, BATCH, trainer.latent_dim))
  return trainer, state, real, latents, jax.jit(functools.partial(r3gan_step.update, trainer))


def with_p(state, p):
  return state.replace(ada_p=jnp.float32(p))


def test_the_presets_pipe_is_on_and_runs_even_at_p_0(setup):
  trainer, state, real, latents, update = setup
  assert trainer.ada_schedule.mode == 'cosine' and trainer.augment_pipe.cutout == 1.0
  key = jax.random.key(3)
  losses = [float(update(with_p(state, p), real, latents, key)[1]['d_loss']) for p in (0.0, 0.5)]
  assert losses[0] != losses[1]
  # At p = 0 the geometric stage still resamples the images (README section 2): D's view is
  # near the images and, in round-off, not them.
  view = augment_step.discriminator_view(trainer, key, real[0], 0.0)
  np.testing.assert_allclose(view, real[0], atol=1e-5)
  assert not np.array_equal(view, real[0])


def squared_gradient_norms(logits_fn, images):
  """||d sum logits_fn(images) / d images_n||^2 per image."""
  gradient = jax.grad(lambda x: logits_fn(x).sum())(images)
  return jnp.sum(jnp.square(gradient), axis=(1, 2, 3))


def test_r1_and_r2_are_taken_before_augmentation(setup):
  trainer, state, real, latents, update = setup
  state, key, p = with_p(state, 1.0), jax.random.key(4), 1.0
  _, metrics = update(state, real, latents, key)
  real_key, fake_key = jax.random.split(key, 4)[:2]  # D's phase's (update's layout)
  discriminator = lambda x: trainer.discriminator.apply({'params': state.d_params}, x)
  view = lambda key: lambda x: discriminator(
      augment_step.discriminator_view(trainer, key, x, p))
  fakes = trainer.generator.apply({'params': state.g_params}, latents[0])
  r1 = jax.jit(squared_gradient_norms, static_argnums=0)(view(real_key), real[0])
  r2 = jax.jit(squared_gradient_norms, static_argnums=0)(view(fake_key), fakes)
  np.testing.assert_allclose(metrics['r1'], r1.mean(), rtol=1e-5)
  np.testing.assert_allclose(metrics['r2'], r2.mean(), rtol=1e-5)
  # With respect to the augmented images (what the pipe showed D) the penalty differs.
  augmented = augment_step.discriminator_view(trainer, real_key, real[0], p)
  assert abs(float(squared_gradient_norms(discriminator, augmented).mean() / r1.mean()) - 1) > 0.01


def test_p_follows_the_cosine_schedule_and_reruns_are_bit_identical(setup):
  """p at step t is the README's base + (1 - d)(final - base), d = (1 + cos(pi n / T)) / 2, at
  the n = t * B images seen before it, and final_p after T."""
  _, state, real, latents, update = setup

  def run(state):
    """p of 4 steps, the last state, and every array that the steps produce."""
    p, arrays = [], []
    for step in range(4):
      state, metrics = update(state, real, latents, jax.random.key(step))
      p.append(float(metrics['augment_p']))
      arrays += jax.tree_util.tree_leaves((state.g_params, state.d_params, state.g_ema_params,
                                           state.g_opt_state, state.d_opt_state, state.ada_p,
                                           metrics))
    return p, state, arrays

  p, last, arrays = run(state)
  # n = 0, 8, 16, 24 of T = 24: d = 1, 3/4, 1/4, 0, and p = 0.3 (1 - d).
  np.testing.assert_allclose(p, [0.0, 0.075, 0.225, 0.3], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(last.ada_p, 0.3, rtol=1e-6)  # for step 5
  for ours, rerun in zip(arrays, run(state)[2], strict=True):
    np.testing.assert_array_equal(ours, rerun)
