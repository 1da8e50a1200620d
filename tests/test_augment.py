"""DiffAugment: identity at strength 0, deterministic per key, differentiable, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from facegan_jax.system.errors import UserError
from facegan_jax.training import augment

ALL = ('color', 'translation', 'cutout')


def images(seed=0, shape=(4, 16, 16, 3)):
  return jax.random.uniform(jax.random.key(seed), shape, minval=-1.0, maxval=1.0)


@pytest.mark.parametrize('policy', [ALL, ('color',), ('translation',), ('cutout',)])
def test_strength_zero_is_the_identity(policy):
  x = images()
  np.testing.assert_array_equal(augment.augment(jax.random.key(1), x, policy, 0.0), x)


def test_deterministic_given_the_key_and_different_across_keys():
  x = images()
  a = augment.augment(jax.random.key(1), x, ALL, 1.0)
  np.testing.assert_array_equal(a, augment.augment(jax.random.key(1), x, ALL, 1.0))
  assert not np.array_equal(a, augment.augment(jax.random.key(2), x, ALL, 1.0))
  assert not np.array_equal(a, x)


def test_translation_moves_pixels_and_fills_with_grey():
  x = images(shape=(64, 8, 8, 1))
  y = np.asarray(augment.translation(jax.random.key(3), x, 1.0))
  # Shifts are at most one pixel (8 * 0.125): each output is its input shifted, grey filled.
  for image, out in zip(np.asarray(x), y):
    matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
               if np.array_equal(out, np.roll(np.pad(image, ((1, 1), (1, 1), (0, 0))),
                                              (dy, dx), (0, 1))[1:-1, 1:-1])]
    assert len(matches) == 1
  assert (y == 0).any()


def test_cutout_zeroes_at_most_a_half_side_square():
  y = np.asarray(augment.cutout(jax.random.key(4), images(shape=(32, 16, 16, 3)), 1.0))
  zeroed = (y == 0).all(axis=-1)
  assert zeroed.any()
  for mask in zeroed:
    rows, cols = np.nonzero(mask)
    assert mask.sum() <= 64 and np.ptp(rows) < 8 and np.ptp(cols) < 8


def test_differentiable_with_the_gradient_of_its_linear_map():
  x = images()
  key = jax.random.key(5)
  weights = images(seed=9)
  fn = lambda x: jnp.sum(augment.augment(key, x, ALL, 1.0) * weights)
  grad = jax.grad(fn)(x)
  assert bool(jnp.isfinite(grad).all()) and float(jnp.abs(grad).sum()) > 0
  direction = images(seed=7)
  eps = 1e-2
  numeric = (fn(x + eps * direction) - fn(x - eps * direction)) / (2 * eps)
  np.testing.assert_allclose(jnp.sum(grad * direction), numeric, rtol=1e-3)


def test_policy_parsing():
  assert augment.parse_policy('color, cutout') == ('color', 'cutout')
  assert augment.parse_policy('') == ()
  with pytest.raises(UserError, match=r"config.augment.policy='color,rotate' names unknown "
                     r"operation\(s\) \['rotate'\]"):
    augment.parse_policy('color,rotate')


def test_random_flip_mirrors_about_half_of_the_images_whole_and_repeats_by_key():
  images = jax.random.uniform(jax.random.key(0), (2, 200, 4, 5, 3))
  flipped = augment.random_flip(jax.random.key(1), images)
  mirrored = jnp.all(flipped == images[..., ::-1, :], axis=(-3, -2, -1))
  unchanged = jnp.all(flipped == images, axis=(-3, -2, -1))
  assert bool(jnp.all(mirrored ^ unchanged))  # each image is mirrored or left, never mixed
  assert 160 < int(mirrored.sum()) < 240
  np.testing.assert_array_equal(augment.random_flip(jax.random.key(1), images), flipped)
