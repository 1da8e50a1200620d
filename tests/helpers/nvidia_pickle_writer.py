"""Writes pickles in the format of NVIDIA's network pickles, for tests of their reader: globals
are written by name (NVIDIA's and torch's need not exist here), calls as REDUCE, tensors as
`_rebuild_tensor_v2` of a legacy torch.save storage stream, modules as `torch_utils.persistence`
objects. `network_pickle` turns what the reader read back into such a file.
"""

import io
import pickle

import numpy as np

from facegan_jax.pretrained import nvidia_pickle


class Global:
  """The global `module.name`, written by name; calling it gives a Call of it."""

  def __init__(self, module, name):
    self.module, self.name = module, name

  def __call__(self, *args):
    return Call(self, args)


class Call:
  """function(*args), written as REDUCE."""

  def __init__(self, function, args):
    self.function, self.args = function, args

  def __reduce__(self):
    return self.function, self.args


class StorageData:
  """The storage of a legacy torch.save stream (its persistent id and element data)."""

  def __init__(self, values):
    self.values = np.ascontiguousarray(values, '<f4').ravel()


class _Pickler(pickle._Pickler):  # pylint: disable=protected-access
  """pickle's Python pickler that writes Global by name and StorageData as a persistent id."""
  dispatch = dict(pickle._Pickler.dispatch)  # pylint: disable=protected-access

  def _save_global_name(self, obj):
    if self.proto >= 4:
      self.save(obj.module)
      self.save(obj.name)
      self.write(pickle.STACK_GLOBAL)
    else:
      self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode())

  dispatch[Global] = _save_global_name

  def persistent_id(self, obj):
    if isinstance(obj, StorageData):
      return ('storage', Global('torch', 'FloatStorage'), 'key0', 'cpu', obj.values.size, None)
    return None


def dumps(obj, protocol=4):
  stream = io.BytesIO()
  _Pickler(stream, protocol).dump(obj)
  return stream.getvalue()


def storage_blob(values, header=(0x1950a86a20f9469cfc6c, 1001)):
  """The bytes of torch.save(storage) in the legacy format (what `_load_from_bytes` reads)."""
  data = StorageData(values)
  sys_info = dict(protocol_version=1001, little_endian=True,
                  type_sizes=dict(short=2, int=4, long=4))
  parts = [dumps(part, 2) for part in (*header, sys_info, data, ['key0'])]
  return b''.join(parts) + np.int64(data.values.size).tobytes() + data.values.tobytes()


def tensor(storage_values, size, stride, offset=0):
  """A torch tensor of `size` and `stride` at `offset` in a float32 storage."""
  storage = Global('torch.storage', '_load_from_bytes')(storage_blob(storage_values))
  return Global('torch._utils', '_rebuild_tensor_v2')(
      storage, offset, tuple(size), tuple(stride), False, Global('collections', 'OrderedDict')())


def _contiguous_strides(shape):
  strides = [1] * len(shape)
  for axis in range(len(shape) - 2, -1, -1):
    strides[axis] = strides[axis + 1] * shape[axis + 1]
  return strides


def _as_written(value, module_src='# source text left out'):
  """A value the reader returned, as NVIDIA's code would have pickled it (Calls as they are)."""
  if isinstance(value, nvidia_pickle.Module):
    return persistent_object(value, module_src)
  if isinstance(value, np.ndarray):
    return tensor(value, value.shape, _contiguous_strides(value.shape))
  if isinstance(value, nvidia_pickle.EasyDict):
    return Global('dnnlib.util', 'EasyDict')([(key, _as_written(item, module_src))
                                              for key, item in value.items()])
  if isinstance(value, dict):
    return {key: _as_written(item, module_src) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(_as_written(item, module_src) for item in value)
  return value


def persistent_object(module, module_src='# source text left out'):
  """`module` (a read Module) as a torch_utils.persistence object with its state, and
  `module_src` as the source text that NVIDIA's loader would execute."""
  state = {'training': False,
           '_parameters': _as_written(module.parameters),
           '_buffers': _as_written(module.buffers),
           '_non_persistent_buffers_set': set(module.non_persistent_buffers),
           '_modules': _as_written(module.children, module_src),
           **_as_written(module.attributes),
           '_init_args': _as_written(module.init_args),
           '_init_kwargs': _as_written(module.init_kwargs)}
  meta = {'type': 'class', 'version': 6, 'module_src': module_src,
          'class_name': module.class_name, 'state': state}
  return Global('torch_utils.persistence', '_reconstruct_persistent_obj')(meta)


def network_pickle(networks, protocol=4, module_src='# source text left out'):
  """The bytes of a snapshot dict holding `networks` (a read NetworkPickle) again, each module
  with `module_src` as its source text."""
  return dumps({**_as_written(networks.networks, module_src), **_as_written(networks.extra)},
               protocol)
