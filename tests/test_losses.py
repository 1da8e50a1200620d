"""Losses against the formulas of the GAN paper, computed by hand in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from facegan_jax.system.errors import UserError
from facegan_jax.training import losses

REAL = np.array([-3.0, -0.5, 0.0, 0.7, 4.0])
FAKE = np.array([-2.0, 0.1, 1.5, -6.0, 3.0])


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def test_discriminator_loss_matches_formula():
  expected = -np.mean(np.log(sigmoid(REAL))) - np.mean(np.log(1.0 - sigmoid(FAKE)))
  np.testing.assert_allclose(losses.discriminator_loss(REAL, FAKE), expected, rtol=1e-6)


def test_non_saturating_generator_loss_matches_formula():
  expected = -np.mean(np.log(sigmoid(FAKE)))
  np.testing.assert_allclose(losses.generator_loss_non_saturating(FAKE), expected, rtol=1e-6)


def test_minimax_generator_loss_matches_formula():
  expected = np.mean(np.log(1.0 - sigmoid(FAKE)))
  np.testing.assert_allclose(losses.generator_loss_minimax(FAKE), expected, rtol=1e-6)


@pytest.mark.parametrize('extreme', [30.0, 100.0, 1e4, 1e30])
def test_extreme_logits_are_finite_with_the_right_limits(extreme):
  confident_right = losses.discriminator_loss(jnp.array([extreme]), jnp.array([-extreme]))
  confident_wrong = losses.discriminator_loss(jnp.array([-extreme]), jnp.array([extreme]))
  assert float(confident_right) == pytest.approx(0.0, abs=1e-12)
  # -log sigmoid(-l) -> l and -log(1 - sigmoid(l)) -> l for large l.
  np.testing.assert_allclose(confident_wrong, 2 * extreme, rtol=1e-6)
  for loss in (losses.generator_loss_non_saturating, losses.generator_loss_minimax):
    for logit in (extreme, -extreme):
      value, grad = jax.value_and_grad(lambda l: loss(jnp.array([l])))(logit)
      assert np.isfinite(value) and np.isfinite(grad)


def test_non_saturating_loss_keeps_gradient_where_minimax_saturates():
  rejected = jnp.array([-10.0])  # D is sure the fake is fake
  ns_grad = jax.grad(lambda l: losses.generator_loss_non_saturating(l).sum())(rejected)
  mm_grad = jax.grad(lambda l: losses.generator_loss_minimax(l).sum())(rejected)
  assert abs(float(ns_grad[0])) > 0.99
  assert abs(float(mm_grad[0])) < 1e-4


def test_get_generator_loss():
  assert losses.get_generator_loss('minimax') is losses.generator_loss_minimax
  with pytest.raises(UserError, match=r"config.loss.generator='wasserstein' is unknown"):
    losses.get_generator_loss('wasserstein')


def test_hinge_losses_match_hand_computation():
  expected_d = np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE))
  np.testing.assert_allclose(losses.discriminator_loss_hinge(REAL, FAKE), expected_d, rtol=1e-6)
  # REAL: 1 - l = 4, 1.5, 1, 0.3, 0 (clipped from -3); FAKE: 1 + l = 0 (-1), 1.1, 2.5, 0, 4.
  assert float(losses.discriminator_loss_hinge(REAL, FAKE)) == pytest.approx(6.8 / 5 + 7.6 / 5)
  np.testing.assert_allclose(losses.generator_loss_hinge(FAKE), -np.mean(FAKE), rtol=1e-6)


def test_r1_equals_a_finite_difference_estimate_of_the_squared_gradient_norm():
  key_w, key_x = jax.random.split(jax.random.key(0))
  weights = jax.random.normal(key_w, (3, 2, 2))
  real = jax.random.normal(key_x, (4, 3, 2, 2))

  def logits_fn(x):  # a smooth non-linear D: [B, 3, 2, 2] -> [B]
    return jnp.sum(jnp.tanh(x * weights), axis=(1, 2, 3)) + 0.3 * jnp.sum(x, axis=(1, 2, 3)) ** 2

  x = np.asarray(real, np.float64)
  eps = 1e-3
  squared_norms = []
  for b in range(x.shape[0]):
    grad = np.zeros(x.shape[1:])
    for index in np.ndindex(*x.shape[1:]):
      step = np.zeros_like(x)
      step[(b,) + index] = eps
      plus = np.asarray(logits_fn(jnp.asarray(x + step, jnp.float32)), np.float64)[b]
      minus = np.asarray(logits_fn(jnp.asarray(x - step, jnp.float32)), np.float64)[b]
      grad[index] = (plus - minus) / (2 * eps)
    squared_norms.append(np.sum(grad**2))
  np.testing.assert_allclose(losses.r1_penalty(logits_fn, real), np.mean(squared_norms),
                             rtol=2e-3)


def test_unknown_discriminator_loss_is_a_clear_error():
  assert losses.get_discriminator_loss('hinge') is losses.discriminator_loss_hinge
  with pytest.raises(UserError, match=r"config.loss.discriminator='wgan' is unknown; use one of "
                     r"\['hinge', 'logistic'\]"):
    losses.get_discriminator_loss('wgan')
