"""The ADA controller against NVIDIA's update statements (training_loop.py lines 314-315, executed
on a float32 buffer: ../shared/fixtures/ada/README.md's table, bit for bit) and R3GAN's cosine
schedule of p (its presets' values, ../shared/fixtures/r3gan/facts.json)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from facegan_jax.system.errors import UserError
from facegan_jax.training import ada

# Batch 64, interval 4, ada_kimg 500, target 0.6, p from 0: r_t of each update (made up), then
# p as the reference's float32 buffer after it (0.0010240001 after a step down: float32 rounding).
SIGN_MEANS = (0.10, 0.45, 0.62, 0.75, 0.80, 0.60, 0.58, 0.90, 0.70, 0.55)
P_FLOAT32 = (0.0, 0.0, 0.000512, 0.001024, 0.001536, 0.001536, 0.0010240001, 0.001536, 0.002048,
             0.001536)
SCHEDULE = ada.Schedule(mode='adaptive', target=0.6, interval=4, ada_kimg=500)


def test_adjust_p_equals_the_reference_table():
  p = jnp.float32(0)
  for sign_mean, expected in zip(SIGN_MEANS, P_FLOAT32):
    p = ada.adjust_p(p, jnp.float32(round(sign_mean * 100)), jnp.float32(100), 0.6, 64, 4, 500)
    assert p.dtype == jnp.float32 and p == np.float32(expected), (sign_mean, p, expected)


def test_update_every_interval_from_accumulated_signs_equals_the_table():
  """Four steps of 25 real logits per update (r_t of the table: positive, zero logits count 0);
  p changes only after every 4th step, and the accumulators restart."""
  step = jax.jit(lambda state, logits, steps: ada.update(
      SCHEDULE, state._replace(**dict(zip(('sign_sum', 'count'), ada.accumulate_signs(
          state.sign_sum, state.count, logits)))), steps, steps * 25, 64))
  state = ada.initial_state(SCHEDULE)
  steps = 0
  for sign_mean, expected in zip(SIGN_MEANS, P_FLOAT32):
    signs = np.zeros(100, np.float32)
    signs[:round(sign_mean * 100)] = 3.5  # positive logits; the rest are exactly 0
    for chunk in signs.reshape(4, 25):
      before = state.p
      steps += 1
      state = step(state, jnp.asarray(chunk), steps)
      if steps % 4:
        assert state.p == before and state.count == 25 * (steps % 4)
    assert state.p == np.float32(expected) and state.sign_sum == 0 and state.count == 0


def test_p_is_clamped_at_0_only_and_unchanged_without_signs():
  step = 64 * 4 / 500_000
  assert ada.adjust_p(jnp.float32(1), 100.0, 100.0, 0.6, 64, 4, 500) == np.float32(1) + np.float32(
      step)
  assert ada.adjust_p(jnp.float32(0.0001), -5.0, 10.0, 0.6, 64, 4, 500) == 0
  assert ada.adjust_p(jnp.float32(0.3), 0.0, 0.0, 0.6, 64, 4, 500) == np.float32(0.3)
  # r_t is the mean sign: one negative logit of 3 gives 1/3 < 0.6.
  sign_sum, count = ada.accumulate_signs(0.0, 0.0, jnp.asarray([[2.0], [-1.0], [0.5]]))
  assert sign_sum == 1 and count == 3
  assert ada.adjust_p(jnp.float32(0.5), sign_sum, count, 0.6, 64, 4, 500) < 0.5


def test_fixed_mode_keeps_p():
  schedule = ada.Schedule(mode='fixed', p=0.25)
  state = ada.update(schedule, ada.initial_state(schedule)._replace(sign_sum=jnp.float32(9.0)),
                     8, 512, 64)
  assert state.p == np.float32(0.25) and state.sign_sum == 9


# R3GAN's aug_scheduler values: (final p, total images, images seen, p), from 0.
R3GAN_SCHEDULE = [
    (0.55, 2e7, 0, 0.0), (0.55, 2e7, 1e6, 0.0033857063363371136), (0.55, 2e7, 1e7, 0.275),
    (0.55, 2e7, 2e7, 0.55), (0.55, 2e7, 4e7, 0.55), (0.3, 2e7, 1e6, 0.0018467489107293344),
    (0.5, 2e8, 1e6, 3.084187958485307e-05), (0.5, 2e8, 1e7, 0.0030779148512155574),
    (0.5, 2e8, 1e8, 0.24999999999999994), (0.4, 2e8, 1e7, 0.002462331880972446),
]


@pytest.mark.parametrize('final_p, total, seen, expected', R3GAN_SCHEDULE)
def test_cosine_p_equals_r3gan_schedule(final_p, total, seen, expected):
  schedule = ada.Schedule(mode='cosine', p=0.0, final_p=final_p, total_images=total)
  state = ada.update(schedule, ada.initial_state(schedule), 1, jnp.float32(seen), 64)
  np.testing.assert_allclose(state.p, expected, rtol=2e-6, atol=1e-9)


def test_bad_schedules_are_user_errors():
  for bad, name in ((ada.Schedule(mode='adaptve'), 'adaptve'), (ada.Schedule(p=-0.1), '-0.1'),
                    (ada.Schedule(interval=0), 'interval=0'),
                    (ada.Schedule(mode='cosine'), 'total_images')):
    with pytest.raises(UserError, match=name):
      ada.check_schedule(bad)
  ada.check_schedule(ada.Schedule())
