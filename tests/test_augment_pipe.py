"""The ADA augment pipe against NVIDIA's AugmentPipe (stylegan2-ada-pytorch @ d72cc7d, CPU) fed the
reference's recorded draws (tests/data/ada_pipe.npz, 11 cases): the draw order and shapes, the
geometric and colour matrices and filter gains (1e-6), the padding margins (exact), the stage
and final images and the input gradient (1e-5 of their largest magnitude; the reference's own
float32 rounding, amplified by grid coordinates of ~100 pixels, is of that order). The static
worst-case padding gives the reference margin's numbers, and keys give reproducible draws.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from facegan_jax.system.errors import UserError
from facegan_jax.training import augment_pipe
from tests.helpers import reference_arrays

# case: (preset, p, resolution, seed of the inputs and of the reference's torch.manual_seed)
CASES = {
    'a_p1': ('bgc', 1.0, 32, 101), 'a_p05': ('bgc', 0.5, 32, 102),
    'b_blit': ('blit', 1.0, 32, 103), 'b_geom': ('geom', 1.0, 32, 104),
    'b_color': ('color', 1.0, 32, 105), 'b_filter': ('filter', 1.0, 32, 106),
    'b_noise': ('noise', 1.0, 32, 107), 'b_cutout': ('cutout', 1.0, 32, 108),
    'c_p06': ('bgcfnc', 0.6, 64, 109), 'e_p0': ('bgc', 0.0, 32, 110),
    'e_p0_bgcfnc': ('bgcfnc', 0.0, 32, 111),
}
GEOMETRIC_CASES = [case for case, (name, *_) in CASES.items()
                   if augment_pipe.preset(name).geometric()]
MATRIX_TOLERANCE = dict(rtol=1e-6, atol=1e-6)
jit_augment = jax.jit(augment_pipe.augment, static_argnums=3)


@functools.lru_cache(maxsize=None)
def fixture():
  return reference_arrays.load('ada_pipe.npz')


def nhwc(array):
  return np.asarray(array).transpose(0, 2, 3, 1)


def check_images(ours, expected_nchw):
  """Within 1e-5 of the largest magnitude of the reference's images (at least 1)."""
  expected = nhwc(expected_nchw)
  scale = max(1.0, float(np.abs(expected).max()))
  np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-5, atol=1e-5 * scale)


@functools.lru_cache(maxsize=None)
def reference_case(case):
  """(settings, images [N, H, W, 3], draws as ours, p) of a fixture case. The inputs are
  regenerated from their seed (the fixture's recipe); the draws are the recorded ones, matched
  in call order to `draw_shapes` and checked for kind and shape."""
  name, p, resolution, seed = CASES[case]
  settings = augment_pipe.preset(name)
  inputs = np.random.default_rng(seed).uniform(-1, 1, (8, 3, resolution, resolution))
  images = nhwc(inputs.astype(np.float32))
  arrays = fixture()
  recorded = sorted(key for key in arrays if key.startswith(f'{case}/draw/'))
  spec = augment_pipe.draw_shapes(settings, images.shape)
  assert len(spec) == len(recorded)
  draws = {}
  for (draw, kind, shape), key in zip(spec, recorded):
    assert key.endswith('_randn' if kind == 'normal' else '_rand'), (draw, key)
    value = arrays[key]
    value = nhwc(value) if draw == 'noise_field' else value  # ours is NHWC like the images
    assert value.shape == tuple(shape), (draw, value.shape, shape)
    draws[draw] = jnp.asarray(value)
  assert arrays[f'{case}/p'] == np.float32(p)
  return settings, images, draws, jnp.float32(p)


@pytest.mark.parametrize('case', CASES)
def test_outputs_equal_the_reference(case):
  settings, images, draws, p = reference_case(case)
  check_images(jit_augment(jnp.asarray(images), draws, p, settings), fixture()[f'{case}/out'])


@pytest.mark.parametrize('case', GEOMETRIC_CASES)
def test_geometric_matrix_margins_and_stage_equal_the_reference(case):
  settings, images, draws, p = reference_case(case)
  arrays = fixture()
  g_inv = augment_pipe.geometric_matrix(draws, p, settings, images.shape)
  np.testing.assert_allclose(g_inv, arrays[f'{case}/G_inv'], **MATRIX_TOLERANCE)
  margins = augment_pipe.padding_margins(g_inv, *images.shape[1:3])
  expected = [int(arrays[f'{case}/geom/{side}']) for side in ('mx0', 'my0', 'mx1', 'my1')]
  assert np.asarray(margins).tolist() == expected
  if f'{case}/geom/out' in arrays:
    geometric = jax.jit(augment_pipe.geometric_transform)(jnp.asarray(images), g_inv, margins)
    check_images(geometric, arrays[f'{case}/geom/out'])


@pytest.mark.parametrize('case', [case for case in CASES if f'{case}/C' in fixture()])
def test_color_matrix_equals_the_reference(case):
  settings, images, draws, p = reference_case(case)
  matrix = augment_pipe.color_matrix(draws, p, settings, images.shape[0])
  np.testing.assert_allclose(matrix, fixture()[f'{case}/C'], **MATRIX_TOLERANCE)


@pytest.mark.parametrize('case', ['b_filter', 'c_p06', 'e_p0_bgcfnc'])
def test_filter_gains_and_taps_equal_the_reference(case):
  settings, images, draws, p = reference_case(case)
  gains = augment_pipe.filter_gains(draws, p, settings, images.shape[0])
  np.testing.assert_allclose(gains, fixture()[f'{case}/imgfilter/g'], **MATRIX_TOLERANCE)
  np.testing.assert_allclose(gains @ augment_pipe.filter_bank(),
                             fixture()[f'{case}/imgfilter/Hz_prime'], **MATRIX_TOLERANCE)


def test_filters_equal_the_reference_buffers():
  np.testing.assert_array_equal(augment_pipe._sym6_taps(), fixture()['const/Hz_geom'])
  np.testing.assert_allclose(augment_pipe.filter_bank(), fixture()['const/Hz_fbank'], atol=1e-12)


def test_input_gradient_equals_the_reference():
  settings, images, draws, p = reference_case('a_p1')
  weights = np.random.default_rng(201).standard_normal((8, 3, 32, 32)).astype(np.float32)
  loss = lambda x: jnp.sum(augment_pipe.augment(x, draws, p, settings) * nhwc(weights))
  check_images(jax.jit(jax.grad(loss))(jnp.asarray(images)), fixture()['a_p1/grad_in'])


@pytest.mark.parametrize('case', ['a_p1', 'b_blit', 'c_p06'])
def test_static_worst_case_padding_equals_the_reference_margins(case):
  """Padding every image by (W - 1, H - 1) (one static shape) gives the numbers of padding by the
  batch's own margins (the reference's shapes): the extra pixels are never read."""
  settings, images, draws, p = reference_case(case)
  g_inv = augment_pipe.geometric_matrix(draws, p, settings, images.shape)
  margins = augment_pipe.padding_margins(g_inv, *images.shape[1:3])
  exact = jax.jit(augment_pipe.geometric_transform, static_argnums=3)(
      jnp.asarray(images), g_inv, margins, tuple(np.asarray(margins).tolist()))
  worst_case = jax.jit(augment_pipe.geometric_transform)(jnp.asarray(images), g_inv, margins)
  assert exact.shape == worst_case.shape == images.shape
  np.testing.assert_allclose(worst_case, exact, rtol=0, atol=2e-6)
  check_images(exact, fixture()[f'{case}/geom/out'] if f'{case}/geom/out' in fixture()
               else fixture()[f'{case}/out'])


@pytest.mark.slow
def test_keys_give_reproducible_draws_with_the_reference_shapes():
  settings = augment_pipe.preset('bgcfnc')
  images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)), jnp.float32)
  run = jax.jit(augment_pipe.augment_with_key, static_argnums=3)
  p = jnp.float32(0.7)
  first = run(jax.random.key(7), images, p, settings)
  np.testing.assert_array_equal(first, run(jax.random.key(7), images, p, settings))
  assert not np.allclose(first, run(jax.random.key(8), images, p, settings))
  draws = jax.jit(augment_pipe.draw_randomness, static_argnums=(1, 2))(
      jax.random.key(7), images.shape, settings)
  for name, kind, shape in augment_pipe.draw_shapes(settings, images.shape):
    assert draws[name].shape == shape and draws[name].dtype == jnp.float32
    if kind == 'uniform':
      assert 0 <= draws[name].min() and draws[name].max() < 1


def test_p_is_traced_and_gates_per_image():
  """One compilation serves every p; p = 0 keeps colours and p = 1 changes every image."""
  settings = augment_pipe.preset('color')
  images = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (6, 8, 8, 3)), jnp.float32)
  traces = []

  @jax.jit
  def run(p):
    traces.append(p)
    return augment_pipe.augment_with_key(jax.random.key(0), images, p, settings)

  np.testing.assert_array_equal(run(jnp.float32(0)), images)
  changed = np.abs(run(jnp.float32(1)) - images).max(axis=(1, 2, 3))
  assert (changed > 1e-3).all() and len(traces) == 1


@pytest.mark.slow
def test_one_channel_skips_hue_and_saturation():
  settings = augment_pipe.preset('bgc')
  names = [name for name, _, _ in augment_pipe.draw_shapes(settings, (2, 32, 32, 1))]
  assert 'hue' not in names and 'saturation' not in names and 'brightness' in names
  images = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (2, 32, 32, 1)), jnp.float32)
  draws = augment_pipe.draw_randomness(jax.random.key(0), images.shape, settings)
  matrix = augment_pipe.color_matrix(draws, 1.0, dataclasses.replace(settings, lumaflip=0.0), 2)
  # The luma (here the only channel) is scaled by contrast and shifted by brightness.
  np.testing.assert_allclose(matrix[:, :3, :3].mean(axis=1).sum(axis=1),
                             np.exp2(draws['contrast'] * 0.5), rtol=1e-6)
  assert jit_augment(images, draws, 1.0, settings).shape == images.shape


def test_presets_and_bad_inputs():
  assert augment_pipe.preset('blit') == augment_pipe.AugmentSettings(xflip=1, rotate90=1, xint=1)
  bgcfnc = dataclasses.asdict(augment_pipe.preset('bgcfnc'))
  assert all(bgcfnc[name] == 1 for name in ('xfrac', 'hue', 'imgfilter', 'noise', 'cutout'))
  with pytest.raises(UserError, match='bgcx'):
    augment_pipe.preset('bgcx')
  with pytest.raises(UserError, match='2 channels|1 or 3'):
    augment_pipe.augment_with_key(jax.random.key(0), jnp.zeros((1, 32, 32, 2)), 1.0,
                                  augment_pipe.preset('color'))
  with pytest.raises(UserError, match='16x16'):
    augment_pipe.augment_with_key(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), 1.0,
                                  augment_pipe.preset('filter'))
