"""The FID Inception: architecture, weight conversion and loading, resizing as PIL does."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from facegan_jax import inception
from facegan_jax.errors import UserError

TINY = 1 / 8


def test_full_network_has_the_fid_inception_parameters_and_2048_features():
  shapes = inception.variable_shapes()
  params = flax.traverse_util.flatten_dict(shapes['params'], sep='.')
  # torchvision's inception_v3 without the auxiliary head has 23,834,568 parameters, of which
  # the 1000-class classifier holds 2048 * 1000 + 1000.
  assert sum(np.prod(x.shape) for x in params.values()) == 23_834_568 - 2_049_000
  # [out, in, h, w] in PyTorch; [h, w, in, out] here.
  assert params['Conv2d_1a_3x3.conv.kernel'].shape == (3, 3, 3, 32)
  assert params['Mixed_6b.branch7x7_2.conv.kernel'].shape == (1, 7, 128, 128)
  assert params['Mixed_7c.branch3x3dbl_3b.conv.kernel'].shape == (3, 1, 384, 384)
  assert params['Mixed_7c.branch_pool.conv.kernel'].shape == (1, 1, 2048, 192)
  features = jax.eval_shape(inception.FIDInceptionV3().apply, shapes,
                            jnp.zeros((2, 299, 299, 3)))
  assert features.shape == (2, inception.FEATURE_DIM)


def to_torch_layout(variables):
  """The inverse naming of `from_torch`, plus the entries it must drop."""
  state = {}
  for path, value in flax.traverse_util.flatten_dict(variables).items():
    collection, *modules, leaf = path
    name = '.'.join(modules)
    if leaf == 'kernel':
      state[f'{name}.weight'] = np.asarray(value).transpose(3, 2, 0, 1)
    else:
      torch_leaf = {'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean',
                    'var': 'running_var'}[leaf]
      state[f'{name}.{torch_leaf}'] = np.asarray(value)
      if leaf == 'mean':
        state[f'{name}.num_batches_tracked'] = np.array(0)
  state['fc.weight'], state['fc.bias'] = np.zeros((1008, 128)), np.zeros(1008)
  return state


@pytest.fixture(scope='module')
def tiny_variables():
  return inception.init_random(0, TINY)


def test_torch_state_dict_converts_by_name_and_loads_back(tiny_variables, tmp_path):
  state = to_torch_layout(tiny_variables)
  assert 'Mixed_5b.branch5x5_2.conv.weight' in state  # torchvision's names
  converted = inception.from_torch(state)
  path = str(tmp_path / 'tiny.npz')
  inception.save(path, converted)
  loaded, fingerprint = inception.load(path, TINY)
  jax.tree_util.tree_map(np.testing.assert_array_equal, loaded, tiny_variables)
  assert len(fingerprint) == 16 and inception.load(path, TINY)[1] == fingerprint


def test_random_network_gives_distinct_order_one_features(tiny_variables):
  images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), np.uint8)
  images[1] = 255 - images[0]
  network = inception.FIDInceptionV3(TINY)
  features = jax.jit(lambda v, x: network.apply(v, inception.preprocess(x)))(tiny_variables, images)
  assert features.shape == (4, 256) and np.isfinite(features).all()
  assert 0.01 < float(features.std()) < 100
  assert np.abs(features[0] - features[1]).max() > 1e-3


def test_missing_weights_say_where_to_get_them(tmp_path):
  with pytest.raises(UserError) as error:
    inception.load(str(tmp_path / 'inception.npz'))
  message = str(error.value)
  assert f"config.eval.inception_weights='{tmp_path}/inception.npz' is not a file" in message
  assert inception.WEIGHTS_URL in message
  assert 'python -m facegan_jax.convert_inception' in message
  assert 'eval.every=0' in message


def test_weights_of_another_width_are_a_clear_error(tiny_variables, tmp_path):
  path = str(tmp_path / 'tiny.npz')
  inception.save(path, tiny_variables)
  with pytest.raises(UserError,
                     match=r'batch_stats/Conv2d_1a_3x3/bn/mean is \(4,\), expected \(32,\)'):
    inception.load(path, 1.0)


@pytest.mark.parametrize('size', [32, 400])  # upsampling, and antialiased downsampling
def test_resize_is_pil_bicubic(size):
  image = np.random.default_rng(size).integers(0, 256, (size, size, 3), np.uint8)
  ours = np.asarray(inception.preprocess(image[None]))[0] * 128 + 128
  pil = np.stack([np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode='F')
                             .resize((299, 299), Image.BICUBIC)) for c in range(3)], axis=-1)
  np.testing.assert_allclose(ours, pil, atol=0.01)


def test_gray_images_become_three_equal_channels():
  gray = np.random.default_rng(1).integers(0, 256, (1, 16, 16, 1), np.uint8)
  rgb = np.asarray(inception.preprocess(np.repeat(gray, 3, axis=-1)))
  np.testing.assert_array_equal(np.asarray(inception.preprocess(gray)), rgb)
