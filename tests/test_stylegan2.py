"""StyleGAN2 against NVIDIA's reference: the fixture weights converted to ours give the
reference's w, truncated w, images, logits and w average (tests/fixtures/stylegan2_*_small.npz,
atol = rtol = 1e-5; the reference moves by up to 4e-6 with its CPU thread count); the standard
configurations have the reference's parameter counts.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import celeba
from facegan_jax import models
from facegan_jax.models import stylegan2
from facegan_jax.pretrained import convert_stylegan2
from facegan_jax.system.errors import UserError
from facegan_jax.training import losses
from tests.helpers import reference_arrays

TOLERANCE = dict(atol=1e-5, rtol=1e-5)
RESOLUTIONS = (32, 64)


def fixture_model(res, lowering='grouped', **overrides):
  """config.model of the fixture networks (../shared/fixtures/README.md, section B)."""
  model = celeba.stylegan2_model(res, channel_base=1024, channel_max=64,
                                 mapping_layers=2, latent_dim=64, w_dim=64)
  model.modconv_lowering = lowering
  model.update(overrides)
  return model


@functools.lru_cache(maxsize=None)
def reference(resolution):
  """(fixture arrays, generator variables, discriminator variables), converted once."""
  generator, discriminator = models.build_models(fixture_model(resolution))
  path = os.path.join(reference_arrays.DIRECTORY, f'stylegan2_{resolution}_small.npz')
  g_vars, d_vars = convert_stylegan2.load_reference_npz(path, generator, discriminator, 64,
                                                        (resolution, resolution, 3))
  return reference_arrays.load(f'stylegan2_{resolution}_small.npz'), g_vars, d_vars


def nhwc(array):
  return jnp.asarray(np.asarray(array).transpose(0, 2, 3, 1))


def check_images(ours, expected):
  np.testing.assert_allclose(np.asarray(ours), nhwc(expected), **TOLERANCE)


@pytest.mark.parametrize('resolution', RESOLUTIONS)
def test_mapping_and_truncation_equal_the_reference(resolution):
  fixture, g_vars, _ = reference(resolution)
  generator, _ = models.build_models(fixture_model(resolution))
  z = jnp.asarray(fixture['in/z'])
  for psi in (1, 0.5):
    ws = generator.apply(g_vars, z, psi, method='map')
    np.testing.assert_allclose(ws, fixture[f'out/ws_psi{psi}'], **TOLERANCE)


@pytest.mark.parametrize('resolution', RESOLUTIONS)
@pytest.mark.parametrize('lowering', ['grouped', 'scaled'])
def test_images_with_constant_and_no_noise_equal_the_reference(resolution, lowering):
  fixture, g_vars, _ = reference(resolution)
  generator, _ = models.build_models(fixture_model(resolution, lowering))
  synthesize = jax.jit(lambda ws, mode: generator.apply(g_vars, ws, mode, method='synthesize'),
                       static_argnums=1)
  for psi, mode in (('1', 'const'), ('1', 'none'), ('0.5', 'const')):
    check_images(synthesize(jnp.asarray(fixture[f'out/ws_psi{psi}']), mode),
                 fixture[f'out/img_{mode}_psi{psi}'])
  # The generator's own inference call: mapping, then synthesis with the constant noise.
  forward = jax.jit(lambda z: generator.apply(g_vars, z, train=False))
  check_images(forward(jnp.asarray(fixture['in/z'])), fixture['out/img_G_forward_const_psi1'])


@pytest.mark.parametrize('resolution', RESOLUTIONS)
def test_discriminator_logits_equal_the_reference(resolution):
  fixture, _, d_vars = reference(resolution)
  for group_size, suffix in ((4, ''), (2, '_mbstd2')):
    _, discriminator = models.build_models(fixture_model(resolution,
                                                         mbstd_group_size=group_size))
    logits = jax.jit(lambda x: discriminator.apply(d_vars, x))
    for name in ('real', 'img_const_psi1') + (('img_none_psi1', 'img_const_psi0.5')
                                              if not suffix else ()):
      images = fixture['in/real'] if name == 'real' else fixture[f'out/{name}']
      np.testing.assert_allclose(logits(nhwc(images)), fixture[f'out/D_{name}{suffix}'][:, 0],
                                 **TOLERANCE)


def test_training_mode_updates_the_w_average_as_the_reference():
  fixture, g_vars, _ = reference(32)
  generator, _ = models.build_models(fixture_model(32, style_mixing_prob=0.0))
  z = jnp.asarray(fixture['in/z'])
  _, updates = jax.jit(lambda z: generator.apply(
      g_vars, z, train=True, rngs={'noise': jax.random.key(0)}, mutable=['batch_stats']))(z)
  np.testing.assert_allclose(updates['batch_stats']['mapping']['w_avg'],
                             fixture['out/w_avg_after_update_emas'], **TOLERANCE)
  # Only the average moved: the noise maps are constants.
  np.testing.assert_array_equal(updates['batch_stats']['synthesis']['b8']['conv0']['noise_const'],
                                g_vars['batch_stats']['synthesis']['b8']['conv0']['noise_const'])


def test_training_mode_draws_noise_and_mixes_styles_from_the_noise_stream():
  _, g_vars, _ = reference(32)
  generator, _ = models.build_models(fixture_model(32, style_mixing_prob=1.0))
  z = jax.random.normal(jax.random.key(1), (4, 64))
  run = jax.jit(lambda key: generator.apply(g_vars, z, train=True, rngs={'noise': key},
                                            mutable=['batch_stats'])[0])
  first = run(jax.random.key(0))
  np.testing.assert_array_equal(first, run(jax.random.key(0)))
  assert not np.allclose(first, run(jax.random.key(1)))
  assert not np.allclose(first, jax.jit(lambda z: generator.apply(g_vars, z, train=False))(z))


def test_style_mixing_switches_to_other_latents_at_a_random_layer_with_its_probability():
  """NVIDIA's mixing: with probability p, the styles from a cutoff in [1, num_ws) on (the same
  cutoff for the whole batch) are the w of other latents; before it, the latents' own w."""
  _, g_vars, _ = reference(32)
  z = jax.random.normal(jax.random.key(1), (4, 64))
  own = models.build_models(fixture_model(32))[0].apply(g_vars, z, method='map')
  layers = own.shape[1]
  cutoffs = {}
  for probability in (0.0, 0.5, 1.0):
    generator, _ = models.build_models(fixture_model(32, style_mixing_prob=probability))
    styles = jax.jit(lambda key: generator.apply(g_vars, z, rngs={'noise': key},
                                                 method='styles'))
    cutoffs[probability] = []
    for seed in range(64):
      ws = np.asarray(styles(jax.random.key(seed)))
      kept = np.all(np.isclose(ws, own, rtol=1e-6, atol=1e-6), axis=(0, 2))
      cutoff = int(np.argmin(kept)) if not kept.all() else layers
      np.testing.assert_array_equal(kept, np.arange(layers) < cutoff)  # one cutoff, whole batch
      np.testing.assert_array_equal(ws[:, cutoff:], np.broadcast_to(
          ws[:, cutoff:cutoff + 1], ws[:, cutoff:].shape))  # one other w from there on
      cutoffs[probability].append(cutoff)
  assert set(cutoffs[0.0]) == {layers}
  assert set(cutoffs[1.0]) == set(range(1, layers))  # 64 draws reach every cutoff of 7
  assert 20 <= cutoffs[0.5].count(layers) <= 44  # about half of the 64 mix


def count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))


# The reference's counts (../shared/fixtures/facts.json: stylegan2.param_counts), z = w = 512.
PARAMETER_COUNTS = {
    # name: (resolution, channel_base, mapping_layers, G mapping, G synthesis, D)
    'paper256': (256, 16384, 8, 2_101_248, 22_666_210, 24_001_089),
    'stylegan2_256': (256, 32768, 8, 2_101_248, 27_933_090, 28_864_129),
    'auto_64': (64, 16384, 2, 525_312, 21_718_296, 23_407_361),
    'auto_128': (128, 16384, 2, 525_312, 22_423_965, 23_882_369),
    'auto_256': (256, 16384, 2, 525_312, 22_666_210, 24_001_089),
    # ../shared/fixtures/nvidia_pkl/facts.json: param_counts_full_size; the published
    # stylegan2-ffhq-512x512 and ffhq.pkl (FFHQ-1024, config F) shapes: G 30,276,583 and
    # 30,370,060 in all.
    'stylegan2_512': (512, 32768, 8, 2_101_248, 28_175_335, 28_982_849),
    'stylegan2_1024': (1024, 32768, 8, 2_101_248, 28_268_812, 29_012_513),
}


@pytest.mark.parametrize('name', sorted(PARAMETER_COUNTS))
def test_standard_configurations_have_the_reference_parameter_counts(name):
  resolution, channel_base, mapping_layers, mapping, synthesis, d_count = PARAMETER_COUNTS[name]
  model = celeba.stylegan2_model(resolution, channel_base, mapping_layers=mapping_layers)
  generator, discriminator = models.build_models(model)
  z = jax.ShapeDtypeStruct((1, 512), jnp.float32)
  images = jax.ShapeDtypeStruct((1, resolution, resolution, 3), jnp.float32)
  g_params = jax.eval_shape(lambda z: generator.init(jax.random.key(0), z, train=False),
                            z)['params']
  d_params = jax.eval_shape(lambda x: discriminator.init(jax.random.key(0), x), images)['params']
  assert count(g_params['mapping']) == mapping
  assert count(g_params['synthesis']) == synthesis
  assert count(d_params) == d_count
  assert stylegan2.num_ws(resolution) == {64: 10, 128: 12, 256: 14, 512: 16,
                                          1024: 18}[resolution]


def test_a_conditional_generator_has_the_reference_parameter_count():
  # facts.json's cifar-like network (32x32, 10 classes, 2 mapping layers): the label embedding
  # (10 x 512 + 512) and fc0's 512 more inputs.
  model = celeba.stylegan2_model(32, 32768, mapping_layers=2)
  model.c_dim = 10
  generator, _ = models.build_models(model)
  g_params = jax.eval_shape(lambda z: generator.init(jax.random.key(0), z, train=False),
                            jax.ShapeDtypeStruct((1, 512), jnp.float32))['params']
  assert count(g_params) == 20_215_315
  assert count(g_params['mapping']['embed']) == 10 * 512 + 512


def test_converter_refuses_weights_of_another_configuration(tmp_path):
  fixture, _, _ = reference(32)
  path = tmp_path / 'g.npz'
  np.savez(path, **{k: v for k, v in fixture.items() if k.startswith('G/')})
  generator, discriminator = models.build_models(fixture_model(32, channel_max=32))
  with pytest.raises(UserError, match=r"generator \['params'\]\['mapping'\]|generator .*shape"):
    convert_stylegan2.load_reference_npz(path, generator, discriminator, 64, (32, 32, 3))
  generator, discriminator = models.build_models(fixture_model(32))
  g_vars, d_vars = convert_stylegan2.load_reference_npz(path, generator, discriminator, 64,
                                                        (32, 32, 3))
  assert d_vars == {} and count(g_vars['params']) == 263_987  # the reference's G count


def test_converter_refuses_another_resampling_filter():
  fixture, _, _ = reference(32)
  arrays = dict(fixture, **{'G/synthesis.b8.resample_filter': np.eye(4, dtype=np.float32)})
  with pytest.raises(UserError, match=r'G/synthesis.b8.resample_filter is not the \[1,3,3,1\]'):
    convert_stylegan2.convert_state_dict(arrays, 'G/')


def test_fixture_discriminator_has_the_reference_parameter_count():
  for resolution, expected in ((32, 288_993), (64, 296_401)):
    assert count(reference(resolution)[2]['params']) == expected


@pytest.mark.parametrize('field, value, message', [
    ('resolution', 2048, 'config.model.resolution=2048 is not supported'),
    ('modconv_lowering', 'fast', "config.model.modconv_lowering='fast' is unknown"),
    ('w_dim', 0, 'config.model.w_dim=0 must be a positive integer'),
    ('style_mixing_prob', 1.5, r'config.model.style_mixing_prob=1.5 must be in \[0, 1\]'),
])
def test_bad_model_fields_are_clear_errors(field, value, message):
  with pytest.raises(UserError, match=message):
    models.build_models(fixture_model(32, **{field: value}))


@pytest.mark.parametrize('resolution', RESOLUTIONS)
def test_logistic_losses_and_r1_equal_the_reference(resolution):
  fixture, _, d_vars = reference(resolution)
  _, discriminator = models.build_models(fixture_model(resolution))
  logits_fn = lambda x: discriminator.apply(d_vars, x)
  real, fake = fixture['out/D_real'][:, 0], fixture['out/D_img_const_psi1'][:, 0]
  np.testing.assert_allclose(
      losses.discriminator_loss(real, fake),
      fixture['out/loss_Dreal_per_sample'].mean() + fixture['out/loss_Dgen_per_sample'].mean(),
      **TOLERANCE)
  np.testing.assert_allclose(losses.generator_loss_non_saturating(fake),
                             fixture['out/loss_Gmain_per_sample'].mean(), **TOLERANCE)
  r1 = jax.jit(lambda x: losses.r1_penalty(logits_fn, x))(nhwc(fixture['in/real']))
  np.testing.assert_allclose(r1, fixture['out/r1_penalty'].mean(), rtol=1e-5)
  # R1's gradient itself, relative to its largest entry.
  grads = jax.jit(jax.grad(lambda x: logits_fn(x).sum()))(nhwc(fixture['in/real']))
  expected = nhwc(fixture['out/r1_grads'])
  np.testing.assert_allclose(grads, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize('resolution', RESOLUTIONS)
@pytest.mark.parametrize('lowering, suffix', [('scaled', ''), ('grouped', '_fused')])
def test_path_lengths_and_penalty_equal_the_reference(resolution, lowering, suffix):
  fixture, g_vars, _ = reference(resolution)
  generator, _ = models.build_models(fixture_model(resolution, lowering))
  synthesize = lambda ws: generator.apply(g_vars, ws, 'const', method='synthesize')
  ws = jnp.asarray(fixture['out/ws_psi1'])
  lengths = jax.jit(lambda ws: losses.path_lengths(synthesize, ws,
                                                   nhwc(fixture['in/pl_noise'])))(ws)
  np.testing.assert_allclose(lengths, fixture[f'out/pl_lengths{suffix}'], rtol=1e-5)
  penalty, pl_mean = losses.path_length_penalty(lengths, jnp.zeros(()), decay=0.01)
  np.testing.assert_allclose(pl_mean, fixture[f'out/pl_mean_after{suffix}'], rtol=1e-5)
  # The penalty squares the lengths' deviations: twice their relative error.
  np.testing.assert_allclose(penalty, fixture[f'out/pl_penalty{suffix}'], rtol=3e-5)
  # The gradient with respect to w whose norms the lengths are, relative to its largest entry.
  noise = nhwc(fixture['in/pl_noise'])
  grads = jax.jit(jax.grad(lambda ws: jnp.sum(synthesize(ws) * noise)))(ws)
  expected = fixture[f'out/pl_grads{suffix}']
  np.testing.assert_allclose(grads, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_path_length_noise_is_scaled_by_the_image_size():
  noise = losses.path_length_noise(jax.random.key(0), (64, 32, 16, 3))
  assert noise.shape == (64, 32, 16, 3)
  assert float(noise.std()) == pytest.approx(1 / np.sqrt(32 * 16), rel=0.02)


def test_bfloat16_computes_the_convolutions_and_stays_close():
  fixture, g_vars, d_vars = reference(32)
  ws, real = jnp.asarray(fixture['out/ws_psi1']), nhwc(fixture['in/real'])
  outputs = {}
  noise = nhwc(fixture['in/pl_noise'])
  for name in ('float32', 'bfloat16'):
    generator, discriminator = models.build_models(fixture_model(32, 'scaled'), name)
    synthesize = lambda ws: generator.apply(g_vars, ws, method='synthesize')
    logits_fn = lambda x: discriminator.apply(d_vars, x)
    images, logits = jax.jit(synthesize)(ws), jax.jit(logits_fn)(real)
    assert images.dtype == logits.dtype == jnp.float32
    # The regularisers differentiate twice through the bfloat16 convolutions.
    r1 = jax.jit(lambda x: losses.r1_penalty(logits_fn, x))(real)
    lengths = jax.jit(lambda ws: losses.path_lengths(synthesize, ws, noise))(ws)
    outputs[name] = images, logits, r1, lengths
  for ours, reference_output in zip(outputs['bfloat16'], outputs['float32']):
    scale = float(jnp.abs(reference_output).max())
    np.testing.assert_allclose(ours, reference_output, atol=0.05 * scale)
    assert not np.array_equal(ours, reference_output)
