"""torch.save's file format written without torch: {name: {tensor name: float32 array}} as a
.pt file that `torch.load` (weights_only too) reads as dicts of OrderedDict state_dicts.

The format (torch >= 1.6): a zip archive (entries stored, under one top-level folder) of
`data.pkl`, a protocol-2 pickle of the object in which each tensor is
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)` and each
storage a persistent id ('storage', torch.FloatStorage, key, 'cpu', numel); `data/<key>`, the
storage's little-endian bytes; `byteorder` and `version`. Globals are written by name, so
nothing of torch is imported.
"""

import io
import pickle
import zipfile

import numpy as np

_ARCHIVE = 'archive'
_FORMAT_VERSION = '3\n'


class _Global:
  """The global `module.name`, written by name (pickle needs a callable to REDUCE it)."""

  def __init__(self, module, name):
    self.module, self.name = module, name

  def __call__(self, *args):
    raise TypeError('a stand-in for a global of the written file')


_ORDERED_DICT = _Global('collections', 'OrderedDict')
_REBUILD_TENSOR = _Global('torch._utils', '_rebuild_tensor_v2')
_FLOAT_STORAGE = _Global('torch', 'FloatStorage')


class _Storage(tuple):
  """(key, float32 array): written as a persistent id, its bytes as data/<key>."""


class _OrderedDict:
  """An OrderedDict of `items`, as pickle writes one: OrderedDict() and SETITEMS."""

  def __init__(self, items):
    self.items = items

  def __reduce__(self):
    return _ORDERED_DICT, (), None, None, iter(self.items)


class _Tensor:
  """A contiguous tensor of `storage`."""

  def __init__(self, storage, shape):
    self.storage, self.shape = storage, shape

  def __reduce__(self):
    strides = tuple(int(np.prod(self.shape[axis + 1:])) for axis in range(len(self.shape)))
    return _REBUILD_TENSOR, (self.storage, 0, tuple(self.shape), strides, False,
                             _OrderedDict([]))


class _Pickler(pickle._Pickler):  # pylint: disable=protected-access
  """pickle's Python pickler, writing _Global by name and _Storage as a persistent id."""
  dispatch = dict(pickle._Pickler.dispatch)  # pylint: disable=protected-access

  def _save_global_by_name(self, obj):
    self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode())
    self.memoize(obj)

  dispatch[_Global] = _save_global_by_name

  def persistent_id(self, obj):
    if isinstance(obj, _Storage):
      return ('storage', _FLOAT_STORAGE, obj[0], 'cpu', obj[1].size)
    return None


def dumps(networks: dict[str, dict[str, np.ndarray]]) -> bytes:
  """The bytes of torch.save({name: OrderedDict(state_dict)}) of float32 arrays."""
  storages = []
  tree = {}
  for network, arrays in networks.items():
    tensors = []
    for name, value in arrays.items():
      value = np.array(value, '<f4', order='C')  # keeps 0-d arrays 0-d
      storage = _Storage((str(len(storages)), value))
      storages.append(storage)
      tensors.append((name, _Tensor(storage, value.shape)))
    tree[network] = _OrderedDict(tensors)
  data = io.BytesIO()
  _Pickler(data, 2).dump(tree)
  stream = io.BytesIO()
  with zipfile.ZipFile(stream, 'w', zipfile.ZIP_STORED) as archive:
    archive.writestr(f'{_ARCHIVE}/data.pkl', data.getvalue())
    archive.writestr(f'{_ARCHIVE}/byteorder', 'little')
    for key, value in storages:
      archive.writestr(f'{_ARCHIVE}/data/{key}', value.tobytes())
    archive.writestr(f'{_ARCHIVE}/version', _FORMAT_VERSION)
  return stream.getvalue()
