"""Perceptual path length: its definition on generators whose answer is known by hand, the
percentile filter, the face crop, and `evaluate --ppl` on a StyleGAN2 run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import lfw_demo
from facegan_jax import evaluate
from facegan_jax.metrics import ppl
from facegan_jax.training import loop

LATENT_DIM, BATCH = 8, 16
MATRIX = jax.random.normal(jax.random.key(7), (LATENT_DIM, 16 * 16))


def squared_distance(a, b):
  return jnp.sum((a - b)**2, axis=(1, 2, 3))


def linear_images(latents, _):
  return (latents @ MATRIX).reshape(-1, 16, 16, 1)


def lengths(space, sampling, synthesize_fn, epsilon=1e-2, map_fn=lambda z: z, key=0):
  return np.asarray(ppl.path_lengths(
      jax.random.key(key), BATCH, LATENT_DIM, space=space, sampling=sampling, epsilon=epsilon,
      crop=False, map_fn=map_fn, synthesize_fn=synthesize_fn, distance_fn=squared_distance))


def the_latents(key=0):
  """z0, z1 [BATCH, LATENT_DIM] as path_lengths draws them from `key`."""
  _, z_key, _ = jax.random.split(jax.random.key(key), 3)
  return np.split(np.asarray(jax.random.normal(z_key, (2 * BATCH, LATENT_DIM)), np.float64), 2)


@pytest.mark.parametrize('sampling', ['end', 'full'])
def test_a_linear_generator_in_w_has_length_of_its_image_of_w1_minus_w0(sampling):
  z0, z1 = the_latents()
  # Gray images count thrice (repeated to RGB for LPIPS); lerp's step is epsilon * (w1 - w0).
  expected = 3 * np.sum(((z1 - z0) @ np.asarray(MATRIX, np.float64))**2, axis=1)
  np.testing.assert_allclose(lengths('w', sampling, linear_images), expected, rtol=2e-3)


def test_identity_in_z_at_the_end_has_the_squared_angle_of_the_slerp():
  z0, z1 = the_latents()
  cos = np.sum(z0 * z1, 1) / np.linalg.norm(z0, axis=1) / np.linalg.norm(z1, axis=1)
  # The unit-speed slerp moves by epsilon * angle; three channels of the same pixels.
  identity = lambda z, _: jnp.tile(z, (1, 2))[:, :16].reshape(-1, 4, 4, 1)
  np.testing.assert_allclose(lengths('z', 'end', identity, map_fn=None),
                             6 * np.arccos(cos)**2, rtol=2e-3)


def test_a_generator_that_ignores_its_latent_has_ppl_zero():
  constant = lambda latents, _: jnp.ones((latents.shape[0], 16, 16, 3))
  for space in ('w', 'z'):
    assert ppl.compute(jax.random.key(0), 40, BATCH, LATENT_DIM, space=space, sampling='full',
                       epsilon=1e-4, crop=True, map_fn=lambda z: z, synthesize_fn=constant,
                       distance_fn=squared_distance) == 0.0


def test_the_filter_keeps_the_lengths_between_the_1st_and_99th_percentiles():
  values = np.concatenate([[0.0], np.arange(1, 199), [10_000.0]])  # 200 lengths
  # 1st percentile: index 1.99 rounded down (1); 99th: index 197.01 rounded up (198).
  assert ppl.filtered_mean(np.random.default_rng(0).permutation(values)) == pytest.approx(99.5)


def test_face_crop_is_rows_three_to_seven_eighths_and_columns_two_to_six():
  images = jnp.arange(16 * 16, dtype=jnp.float32).reshape(1, 16, 16, 1)
  np.testing.assert_array_equal(ppl.face_crop(images)[0, :, :, 0],
                                np.arange(256).reshape(16, 16)[6:14, 4:12])


@pytest.mark.slow
def test_evaluate_ppl_of_a_stylegan2_run_is_positive_and_reproducible(tmp_path, lpips_weights):
  loop.train_and_evaluate(lfw_demo.get_config('stylegan2_test'), str(tmp_path))
  results = [evaluate.evaluate_checkpoint(
      str(tmp_path), with_fid=False, with_ppl=True,
      ppl_overrides=dict(ppl_samples=20, ppl_space=space, lpips_weights=lpips_weights))
             for space in ('w', 'w', 'z')]
  assert results[0] == results[1]
  assert results[0]['ppl'] > 0 and results[2]['ppl'] > 0 and results[2]['ppl_space'] == 'z'
  assert set(results[0]) == {'step', 'ppl', 'ppl_samples', 'ppl_space', 'ppl_sampling',
                             'ppl_epsilon', 'ppl_crop'}
