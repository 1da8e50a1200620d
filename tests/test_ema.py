"""The generator's exponential moving average."""

import jax.numpy as jnp
import numpy as np
import pytest

from facegan_jax.training import ema


def test_ema_equals_its_closed_form_after_k_steps_of_a_fixed_update():
  decay, k = 0.9, 7
  start = {'w': jnp.array([1.0, -2.0]), 'b': jnp.array(0.5)}
  target = {'w': jnp.array([3.0, 4.0]), 'b': jnp.array(-1.0)}
  average = start
  for _ in range(k):
    average = ema.update(average, target, decay)
  for name in start:  # ema_k = target + decay^k (ema_0 - target)
    expected = target[name] + decay**k * (start[name] - target[name])
    np.testing.assert_allclose(average[name], expected, rtol=1e-6)


def test_ema_of_a_moving_sequence_is_the_weighted_sum():
  decay = 0.8
  values = [2.0, -1.0, 5.0]
  average = jnp.array(0.0)
  for value in values:
    average = ema.update(average, jnp.array(value), decay)
  expected = sum((1 - decay) * decay**(len(values) - 1 - i) * v for i, v in enumerate(values))
  assert float(average) == pytest.approx(expected, rel=1e-6)


def test_decay_halves_the_weight_every_halflife():
  decay = ema.decay_per_step(batch_size=64, halflife_images=6400)
  assert decay**100 == pytest.approx(0.5)
