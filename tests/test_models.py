"""Model shapes at every resolution, DCGAN parameter counts, and config errors."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import celeba
from facegan_jax import models
from facegan_jax.models import dcgan
from facegan_jax.system.errors import UserError


def model_config(**overrides):
  config = celeba.get_config().model
  config.update(overrides)
  return config


def count(params):
  return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))


def shapes(generator, discriminator, config, batch=2):
  """Output shapes and variables from abstract evaluation (no FLOPs spent)."""
  z = jax.ShapeDtypeStruct((batch, config.latent_dim), jnp.float32)
  image = jax.ShapeDtypeStruct((batch, config.resolution, config.resolution, config.channels),
                               jnp.float32)
  g_vars = jax.eval_shape(lambda z: generator.init(jax.random.key(0), z, train=False), z)
  d_vars = jax.eval_shape(lambda x: discriminator.init(jax.random.key(0), x, train=False), image)
  fakes = jax.eval_shape(lambda v, z: generator.apply(v, z, train=False), g_vars, z)
  logits = jax.eval_shape(lambda v, x: discriminator.apply(v, x, train=False), d_vars, image)
  return fakes.shape, logits.shape, g_vars, d_vars


@pytest.mark.parametrize('resolution', [16, 32, 64, 128, 256])
def test_dcgan_shapes_at_every_resolution(resolution):
  config = model_config(resolution=resolution, g_width=8, d_width=8)
  fakes, logits, _, _ = shapes(*models.build_models(config), config)
  assert fakes == (2, resolution, resolution, 3)
  assert logits == (2,)


def test_dcgan64_has_the_parameter_counts_of_the_pytorch_reference():
  config = model_config()
  _, _, g_vars, d_vars = shapes(*models.build_models(config), config)
  # pytorch/examples dcgan: netG 3,576,704 and netD 2,765,568 parameters.
  assert count(g_vars['params']) == 3_576_704
  assert count(d_vars['params']) == 2_765_568


def test_dcgan_widths_follow_the_paper():
  assert dcgan.width_multipliers(64) == (8, 4, 2, 1)
  assert dcgan.width_multipliers(16) == (2, 1)
  assert dcgan.width_multipliers(256) == (8, 8, 8, 4, 2, 1)


def test_generator_output_is_an_image_in_tanh_range():
  config = model_config(resolution=16, g_width=4, d_width=4)
  generator, discriminator = models.build_models(config)
  z = 3.0 * jax.random.normal(jax.random.key(1), (4, config.latent_dim))
  variables = generator.init(jax.random.key(0), z, train=False)
  images, _ = generator.apply(variables, z, train=True, mutable=['batch_stats'])
  assert images.shape == (4, 16, 16, 3)
  assert float(jnp.abs(images).max()) <= 1.0
  assert float(images.std()) > 0.0
  d_vars = discriminator.init(jax.random.key(2), images, train=False)
  logits, _ = discriminator.apply(d_vars, images, train=True, mutable=['batch_stats'])
  assert logits.shape == (4,) and bool(jnp.isfinite(logits).all())


def test_without_normalisation_layers_use_biases_and_no_batch_stats():
  config = model_config(resolution=16, g_width=4, d_width=4, g_norm='none', d_norm='none')
  _, _, g_vars, d_vars = shapes(*models.build_models(config), config)
  assert 'batch_stats' not in g_vars and 'batch_stats' not in d_vars
  assert 'bias' in g_vars['params']['Dense_0']


def test_mlp_pair_shapes():
  config = ml_collections.ConfigDict(dict(name='mlp', resolution=2, channels=1, latent_dim=4,
                                          hidden=16))
  fakes, logits, _, _ = shapes(*models.build_models(config), config, batch=5)
  assert fakes == (5, 2, 2, 1) and logits == (5,)


@pytest.mark.parametrize('resolution', [8, 48, 512])
def test_unsupported_resolution_is_a_clear_error(resolution):
  with pytest.raises(UserError, match=rf'config.model.resolution={resolution!r} is not '
                     r'supported; use a power of two from 16 to 256'):
    models.build_models(model_config(resolution=resolution))


def test_unknown_model_and_norm_are_clear_errors():
  with pytest.raises(UserError, match="config.model.name='nonexistent' is unknown; use one of"):
    models.build_models(model_config(name='nonexistent'))
  with pytest.raises(UserError, match="config.model.g_norm='layer' is unknown"):
    models.build_models(model_config(g_norm='layer'))


def test_spectral_norm_estimate_converges_to_the_largest_singular_value():
  config = model_config(resolution=16, g_width=4, d_width=4, d_norm='spectral')
  _, discriminator = models.build_models(config)
  images = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  variables = discriminator.init(jax.random.key(1), images, train=False)
  apply = jax.jit(lambda v: discriminator.apply(v, images, train=True, mutable=['batch_stats']))
  for _ in range(60):  # one power iteration per training call
    _, updates = apply(variables)
    variables = {'params': variables['params'], 'batch_stats': updates['batch_stats']}
  stats = jax.tree_util.tree_leaves_with_path(variables['batch_stats'])
  sigmas = {jax.tree_util.keystr(path): float(value) for path, value in stats
            if 'sigma' in jax.tree_util.keystr(path)}
  kernels = {jax.tree_util.keystr(path): np.asarray(value) for path, value in
             jax.tree_util.tree_leaves_with_path(variables['params']) if 'kernel' in
             jax.tree_util.keystr(path)}
  assert len(sigmas) == len(kernels) == 3  # two convolutions and the logit layer
  for (_, sigma), (_, kernel) in zip(sorted(sigmas.items()), sorted(kernels.items())):
    largest = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    assert sigma == pytest.approx(largest, rel=1e-3)


@pytest.mark.parametrize('config', [
    model_config(resolution=16, g_width=8, d_width=8),
    model_config(name='sngan', resolution=32, latent_dim=128, g_width=16, d_width=16)],
                         ids=['dcgan', 'sngan'])
def test_bfloat16_models_keep_float32_params_and_interfaces_and_stay_close(config):
  z = jax.random.normal(jax.random.key(1), (4, config.latent_dim))
  outputs = {}
  for name in ('float32', 'bfloat16'):
    generator, discriminator = models.build_models(config, name)
    g_vars = generator.init(jax.random.key(0), z, train=False)
    images, _ = generator.apply(g_vars, z, train=True, mutable=['batch_stats'])
    d_vars = discriminator.init(jax.random.key(2), images, train=False)
    logits, _ = discriminator.apply(d_vars, images, train=True, mutable=['batch_stats'])
    variables = jax.tree_util.tree_leaves((g_vars, d_vars))
    assert {x.dtype for x in variables} == {jnp.dtype(jnp.float32)}
    assert images.dtype == logits.dtype == jnp.float32
    outputs[name] = images, logits
  for ours, reference in zip(outputs['bfloat16'], outputs['float32']):
    # bfloat16 keeps 8 significant bits: SNGAN's sum-pooled logits (~20) round in steps of 1/8.
    np.testing.assert_allclose(ours, reference, atol=0.05, rtol=0.02)
    assert not np.array_equal(ours, reference)  # bfloat16 really computed something else
