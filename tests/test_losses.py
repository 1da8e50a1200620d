"""Losses against the formulas of the GAN paper, computed by hand in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from facegan_jax import losses
from facegan_jax.errors import UserError

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
