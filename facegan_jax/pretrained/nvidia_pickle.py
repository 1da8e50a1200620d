"""NVIDIA's StyleGAN2 network pickles (and R3GAN snapshots) read without torch and without
running anything from the file.

NVlabs/stylegan2-ada-pytorch and NVlabs/stylegan3 write their networks (`ffhq.pkl`,
`network-snapshot-*.pkl`) with `pickle.dump` of a dict {G, D, G_ema, augment_pipe,
training_set_kwargs}. Each network and submodule is a `torch_utils.persistence` object: a call
of `_reconstruct_persistent_obj(meta)` whose meta holds the class name, the Python source of its
module (which NVIDIA's loader executes; this reader never looks at it) and the torch module's
instance dict (`_parameters`, `_buffers`, `_modules`, its own attributes and the construction
arguments `_init_args`, `_init_kwargs`). Every tensor is `_rebuild_tensor_v2(storage, offset,
size, stride, ...)` of a storage written as a legacy `torch.save` stream (`_load_from_bytes`).
brownvc/R3GAN's snapshots pickle plain torch modules by class reference instead (NEWOBJ +
BUILD of the instance dict) and add the optimiser states.

`find_class` resolves only the globals these files use, each to an inert stand-in: modules
become `Module` records, tensors numpy arrays copied out of their storages, numpy scalars
numpy scalars. Any other global is refused with a UserError naming it, before anything is
called, so a file that would run code (os.system, builtins.exec, subprocess...) never does.
"""

import collections
import io
import pickle
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np

from facegan_jax.models import stylegan2
from facegan_jax.runs import storage
from facegan_jax.system.errors import UserError

STYLEGAN3 = 'NVlabs/stylegan3'
STYLEGAN2_ADA = 'NVlabs/stylegan2-ada-pytorch'
R3GAN = 'brownvc/R3GAN'
NETWORK_KEYS = ('G', 'D', 'G_ema', 'augment_pipe')

_TORCH_SAVE_MAGIC = 0x1950a86a20f9469cfc6c
_TORCH_SAVE_VERSION = 1001
# Legacy torch.save storage classes -> element dtype (little-endian, as the stream's sys info
# must say).
_STORAGE_DTYPES = {
    'FloatStorage': np.dtype('<f4'), 'DoubleStorage': np.dtype('<f8'),
    'HalfStorage': np.dtype('<f2'), 'BFloat16Storage': np.dtype(ml_dtypes.bfloat16),
    'LongStorage': np.dtype('<i8'), 'IntStorage': np.dtype('<i4'),
    'ShortStorage': np.dtype('<i2'), 'CharStorage': np.dtype('i1'),
    'ByteStorage': np.dtype('u1'), 'BoolStorage': np.dtype('?')}
# Plain torch modules that R3GAN's snapshots pickle by class reference.
_R3GAN_MODULES = (
    'training.networks.Generator', 'training.networks.Discriminator',
    'R3GAN.Networks.Generator', 'R3GAN.Networks.Discriminator',
    'R3GAN.Networks.GeneratorStage', 'R3GAN.Networks.DiscriminatorStage',
    'R3GAN.Networks.GenerativeBasis', 'R3GAN.Networks.DiscriminativeBasis',
    'R3GAN.Networks.ResidualBlock', 'R3GAN.Networks.Convolution',
    'R3GAN.Networks.UpsampleLayer', 'R3GAN.Networks.DownsampleLayer',
    'R3GAN.FusedOperators.BiasedActivationCUDA',
    'R3GAN.Resamplers.InterpolativeUpsamplerCUDA',
    'R3GAN.Resamplers.InterpolativeDownsamplerCUDA',
    'torch.nn.modules.container.ModuleList', 'torch.nn.modules.conv.Conv2d',
    'torch.nn.modules.linear.Linear')
_TORCH_DTYPES = ('float32', 'float16', 'bfloat16')


class Module:
  """One torch module of the file, as data: `class_name` ('SynthesisLayer' for NVIDIA's
  persistent classes, the qualified name for modules pickled by reference), `attributes` (the
  instance's own ints, floats, strings, lists...), `parameters` and `buffers` (name -> numpy
  array or None), `children` (name -> Module or None) and the construction arguments
  `init_args`, `init_kwargs` (NVIDIA's persistent classes only; None otherwise)."""

  class_name = ''

  def __setstate__(self, state):
    if not isinstance(state, dict) or not isinstance(state.get('_modules', {}), dict):
      raise UserError(f'a {self.class_name} module\'s state is not a torch module\'s instance '
                      'dict; the file is not a network pickle.')
    # torch's bookkeeping (hooks, parameters, ...) starts with '_'; the class's own attributes
    # do not.
    self.attributes = {key: value for key, value in state.items()
                       if not key.startswith('_') and key != 'training'}
    self.parameters = dict(state.get('_parameters', {}))
    self.buffers = dict(state.get('_buffers', {}))
    self.non_persistent_buffers = set(state.get('_non_persistent_buffers_set', ()))
    self.children = dict(state.get('_modules', {}))
    self.init_args = state.get('_init_args')
    self.init_kwargs = state.get('_init_kwargs')

  def state_dict(self, prefix=''):
    """{name: array} exactly as torch's `state_dict()`: own parameters, own persistent
    buffers, then the children's, in their order, names joined with dots."""
    arrays = {prefix + name: value for name, value in self.parameters.items()
              if value is not None}
    arrays.update((prefix + name, value) for name, value in self.buffers.items()
                  if value is not None and name not in self.non_persistent_buffers)
    for name, child in self.children.items():
      if child is not None:
        arrays.update(child.state_dict(f'{prefix}{name}.'))
    return arrays

  def modules(self, prefix=''):
    """(dotted path, Module) of this module ('' for itself) and all its descendants."""
    yield prefix, self
    for name, child in self.children.items():
      if child is not None:
        yield from child.modules(f'{prefix}.{name}' if prefix else name)


class NetworkPickle(NamedTuple):
  """What a network pickle holds: `repo`, the code that wrote it (STYLEGAN3, STYLEGAN2_ADA or
  R3GAN), `networks` (those of G, D, G_ema, augment_pipe present and not None) and `extra`,
  every other top-level entry (training_set_kwargs; R3GAN's cur_nimg and optimiser states)."""
  repo: str
  networks: dict[str, Module]
  extra: dict[str, Any]

  def state_dicts(self):
    """{'<network>/<state_dict name>': array} of every network: the layout of the .npz that
    facegan_jax.pretrained.convert_stylegan2 converts."""
    return {f'{network}/{name}': value for network, module in self.networks.items()
            for name, value in module.state_dict().items()}


class EasyDict(dict):
  """dnnlib.util.EasyDict as data: the dict of its items (no attribute access)."""


class _NumpyDtype:
  """numpy.dtype(spec, ...) as a record: only its spec and byte order, which the numpy scalars
  of the file need; numpy's own dtype unpickling never sees the file's state."""

  def __init__(self, spec, align=False, copy=False):
    del align, copy
    dtype = np.dtype(spec) if isinstance(spec, str) and spec.isalnum() else None
    if dtype is None or dtype.kind not in 'biufc':
      raise UserError(f'numpy.dtype({spec!r}) in the file is not a numeric dtype; network '
                      'pickles hold only numeric numpy scalars.')
    self.dtype = dtype

  def __setstate__(self, state):
    self.dtype = self.dtype.newbyteorder(state[1] if state[1] in '<>' else '=')


def _numpy_scalar(dtype, data):
  """numpy.core.multiarray.scalar: the numpy scalar of `data`'s bytes."""
  if not isinstance(dtype, _NumpyDtype) or not isinstance(data, bytes) or (
      len(data) != dtype.dtype.itemsize):
    raise UserError('a numpy scalar in the file is not a numeric dtype and its bytes.')
  value = np.frombuffer(data, dtype.dtype)[0]
  return value.astype(value.dtype.newbyteorder('='))


def _bytes_from_latin1(text, encoding):
  """_codecs.encode as protocol 2 writes bytes: str(bytes, 'latin1') back to bytes."""
  if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
    raise UserError('_codecs.encode in the file is not the latin1 bytes of protocol 2.')
  return text.encode('latin1')


def _reconstruct_persistent_obj(meta):
  """torch_utils.persistence's reconstruction, without its source text: a Module."""
  if not isinstance(meta, dict) or meta.get('type') != 'class' or not isinstance(
      meta.get('class_name'), str):
    raise UserError('a torch_utils.persistence object in the file is not a persistent class '
                    'instance; only network modules are read.')
  module = Module.__new__(Module)
  module.class_name = meta['class_name']
  module.__setstate__(meta.get('state'))
  return module


def _rebuild_tensor(storage_array, storage_offset, size, stride, *unused):
  """torch._utils._rebuild_tensor(_v2): the [size] array at `stride` (in elements) from
  `storage_offset` of the storage, copied; every element must lie inside the storage."""
  del unused  # requires_grad, backward hooks, metadata
  if not isinstance(storage_array, np.ndarray) or not all(
      isinstance(n, int) and n >= 0 for n in (storage_offset, *size, *stride)) or len(
          size) != len(stride):
    raise UserError(f'a tensor of the file has a bad layout (size {size}, stride {stride}, '
                    f'offset {storage_offset}).')
  if 0 in size:
    return np.zeros(size, storage_array.dtype)
  last = storage_offset + sum((n - 1) * step for n, step in zip(size, stride))
  if last >= storage_array.size:
    raise UserError(f'a tensor of the file (size {tuple(size)}, stride {tuple(stride)}, '
                    f'offset {storage_offset}) reaches past its storage of '
                    f'{storage_array.size} elements.')
  itemsize = storage_array.itemsize
  return np.lib.stride_tricks.as_strided(
      storage_array[storage_offset:], tuple(size), tuple(step * itemsize for step in stride),
      writeable=False).copy()


def _rebuild_parameter(data, *unused):
  """torch._utils._rebuild_parameter(_with_state): the tensor's array."""
  del unused  # requires_grad, backward hooks, state
  return data


class _StorageUnpickler(pickle.Unpickler):
  """One of the small pickles of a legacy torch.save stream of a storage: its only global is
  the storage class, and its persistent id names the storage."""

  def find_class(self, module, name):
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _STORAGE_DTYPES[name]
    raise UserError(f'the file\'s tensor data references the global {module}.{name}, which '
                    'tensor storages never do; refusing to load it.')

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == 'storage'
            and isinstance(pid[1], np.dtype)):
      raise UserError(f'the file\'s tensor data has an unknown persistent id {pid!r:.80}.')
    return pid[1:]


def _load_storage(blob):
  """torch.storage._load_from_bytes: the storage of a legacy torch.save stream (magic, version,
  sys info, the storage's persistent id, its keys; then per key an int64 element count and the
  raw little-endian elements) as a 1-D numpy array."""
  if not isinstance(blob, bytes):
    raise UserError('a tensor storage of the file is not bytes.')
  stream = io.BytesIO(blob)
  load = lambda: _StorageUnpickler(stream).load()
  try:
    magic, version, sys_info = load(), load(), load()
    if magic != _TORCH_SAVE_MAGIC or version != _TORCH_SAVE_VERSION:
      raise UserError('a tensor storage of the file is not a legacy torch.save stream '
                      f'(magic {magic!r:.40}, version {version!r:.20}).')
    if not sys_info.get('little_endian'):
      raise UserError('a tensor storage of the file is big-endian; only little-endian files '
                      'are read.')
    dtype, key, _, numel, view = load()
    keys = load()
    if keys != [key] or view is not None:
      raise UserError(f'a tensor storage of the file holds storages {keys!r:.80} (view '
                      f'{view!r:.40}); only one whole storage per stream is read.')
    count = int(np.frombuffer(stream.read(8), '<i8')[0])
  except (pickle.UnpicklingError, EOFError, IndexError, TypeError, ValueError,
          AttributeError) as error:
    raise UserError(f'a tensor storage of the file is corrupt ({type(error).__name__}: '
                    f'{error}).') from None
  size = len(blob) - stream.tell()
  if count != numel or size != numel * dtype.itemsize:
    raise UserError(f'a tensor storage of the file holds {size} bytes, not the '
                    f'{numel} elements of {dtype} it declares.')
  # A read-only view of the blob: each tensor copies its elements out (_rebuild_tensor).
  return np.frombuffer(blob, dtype, numel, stream.tell())


def _module_class(qualified_name):
  """A Module subclass standing in for a torch module class pickled by reference."""
  return type(qualified_name.rsplit('.', 1)[-1], (Module,), {'class_name': qualified_name})


_GLOBALS = {
    ('torch_utils.persistence', '_reconstruct_persistent_obj'): _reconstruct_persistent_obj,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
    ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
    ('torch.storage', '_load_from_bytes'): _load_storage,
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('dnnlib.util', 'EasyDict'): EasyDict,
    ('numpy', 'dtype'): _NumpyDtype,
    ('numpy.core.multiarray', 'scalar'): _numpy_scalar,
    ('numpy._core.multiarray', 'scalar'): _numpy_scalar,
    # How protocols 2 and 3 write sets and (protocol 2) bytes.
    ('builtins', 'set'): set, ('__builtin__', 'set'): set,
    ('builtins', 'frozenset'): frozenset, ('__builtin__', 'frozenset'): frozenset,
    ('_codecs', 'encode'): _bytes_from_latin1,
    **{('torch', name): f'torch.{name}' for name in _TORCH_DTYPES},
    **{tuple(name.rsplit('.', 1)): _module_class(name) for name in _R3GAN_MODULES},
}


class _NetworkUnpickler(pickle.Unpickler):
  """Resolves only _GLOBALS; UserError naming any other global."""

  def find_class(self, module, name):
    if (module, name) in _GLOBALS:
      return _GLOBALS[(module, name)]
    if module.startswith('dnnlib.tflib'):
      raise UserError(f'this is a TensorFlow-era StyleGAN pickle (it references {module}.'
                      f'{name}); convert it to a PyTorch one first with NVIDIA\'s legacy.py '
                      '(stylegan2-ada-pytorch or stylegan3: python legacy.py --source=IN.pkl '
                      '--dest=OUT.pkl), then read OUT.pkl.')
    raise UserError(f'refusing to load the global {module}.{name}: StyleGAN2 network pickles '
                    'never reference it, and unpickling it could run code from the file.')

  def persistent_load(self, pid):
    raise UserError(f'the file has a persistent id {pid!r:.80}; network pickles have none '
                    '(is it a torch.save file?).')


def loads(data: bytes, name: str = 'the file') -> NetworkPickle:
  """The networks of a network pickle's bytes; UserError, naming `name`, for anything that is
  not one (an empty, text, image or truncated file, another pickle, a refused global)."""
  return load(io.BytesIO(data), name)


def load(stream, name: str = 'the file') -> NetworkPickle:
  """`loads` of a seekable binary file object, read as the unpickler goes (no copy of the
  whole file)."""
  head = stream.read(8)
  stream.seek(0)
  if not head:
    raise UserError(f'{name} is empty; expected an NVIDIA network pickle (.pkl).')
  if head[:1] != pickle.PROTO or not 2 <= head[1] <= 5:
    kind = ('a PNG image' if head.startswith(b'\x89PNG') else
            'a zip archive (torch.save?)' if head.startswith(b'PK') else
            f'starts with {head!r}')
    raise UserError(f'{name} is not a pickle of protocol 2 to 5 ({kind}); expected an '
                    'NVIDIA network pickle (.pkl).')
  try:
    top = _NetworkUnpickler(stream).load()
  except UserError as error:
    raise UserError(f'{name}: {error}') from None
  except (pickle.UnpicklingError, EOFError, IndexError, KeyError, TypeError, ValueError,
          AttributeError, MemoryError, RecursionError) as error:
    raise UserError(f'{name} is not a readable pickle, truncated or corrupt '
                    f'({type(error).__name__}: {str(error)[:120]}).') from None
  networks = {key: top.get(key) for key in NETWORK_KEYS} if isinstance(top, dict) else {}
  networks = {key: module for key, module in networks.items() if module is not None}
  if not all(isinstance(module, Module) for module in networks.values()) or 'G' not in networks:
    raise UserError(f'{name} is a pickle but not a network snapshot: expected a dict whose G '
                    f'is a network, found {type(top).__name__}.')
  extra = {key: value for key, value in top.items() if key not in NETWORK_KEYS}
  return NetworkPickle(_repo(networks['G']), networks, extra)


def read(path: str) -> NetworkPickle:
  """`load` of the file at `path`: streamed from a local file, whole from gs://."""
  if not storage.path(path).is_file():
    raise UserError(f'{path}: no such file; give the path of an NVIDIA network pickle (.pkl).')
  if storage.is_gcs(path):
    return loads(storage.read_bytes(path), path)
  with open(path, 'rb') as file:
    return load(file, path)


def _repo(generator: Module) -> str:
  """The code that wrote a generator: R3GAN's are pickled by reference; stylegan3's
  networks_stylegan2 stores num_fp16_res on its SynthesisNetwork, ada's networks does not."""
  if generator.class_name.startswith('training.networks.'):
    return R3GAN
  synthesis = generator.children.get('synthesis')
  if synthesis is not None and 'num_fp16_res' in synthesis.attributes:
    return STYLEGAN3
  return STYLEGAN2_ADA


# Class defaults of the construction arguments that config.model needs, as each repo's code has
# them: a file records only the arguments that were passed. The repos differ in fp16, clamping
# and the w average's decay (stylegan3's train.py leaves num_fp16_res and conv_clamp to them).
_DEFAULTS = {
    STYLEGAN3: dict(
        G=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256,
               architecture='skip', resample_filter=[1, 3, 3, 1]),
        mapping=dict(num_layers=8, lr_multiplier=0.01, w_avg_beta=0.998),
        D=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256,
               architecture='resnet', resample_filter=[1, 3, 3, 1], mbstd_group_size=4,
               mbstd_num_channels=1)),
    STYLEGAN2_ADA: dict(
        G=dict(channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None,
               architecture='skip', resample_filter=[1, 3, 3, 1]),
        mapping=dict(num_layers=8, lr_multiplier=0.01, w_avg_beta=0.995),
        D=dict(channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None,
               architecture='resnet', resample_filter=[1, 3, 3, 1], mbstd_group_size=4,
               mbstd_num_channels=1)),
}


def construction_kwargs(networks: NetworkPickle) -> dict[str, dict]:
  """{'G': ..., 'mapping': ..., 'D': ...}: the arguments the StyleGAN2 networks were built with,
  flat (ada's G nests its synthesis arguments, both repos nest the mapping's and D's epilogue's),
  with the writing repo's class defaults for those not passed."""
  defaults = _DEFAULTS[networks.repo]
  g_kwargs = dict(networks.networks['G'].init_kwargs or {})
  mapping = {**defaults['mapping'], **g_kwargs.pop('mapping_kwargs', {})}
  g_kwargs = {**defaults['G'], **g_kwargs, **g_kwargs.pop('synthesis_kwargs', {})}
  d_kwargs = dict(networks.networks['D'].init_kwargs or {}) if 'D' in networks.networks else {}
  d_kwargs = {**defaults['D'], **d_kwargs, **d_kwargs.pop('epilogue_kwargs', {})}
  return {'G': g_kwargs, 'mapping': mapping, 'D': d_kwargs}


def stylegan2_model_fields(networks: NetworkPickle) -> dict[str, Any]:
  """config.model fields of facegan_jax's StyleGAN2 that build the file's networks: name,
  resolution, channels, latent_dim, w_dim, channel_base, channel_max, mapping_layers,
  mapping_lr_multiplier, w_avg_beta, mbstd_group_size, mbstd_num_channels, conv_clamp (0.0:
  none), c_dim (0: unconditional). NVIDIA's fp16 resolutions are not a field: the port computes in
  config.train.compute_dtype.

  UserError, one line, for what the port cannot build: R3GAN, StyleGAN3 (-T/-R),
  architectures other than G 'skip' and D 'resnet', another resampling filter, a D whose
  channels, clamping or classes differ from G's, a D label mapping other than NVIDIA's default,
  or layers that disagree with the arguments.
  """
  generator = networks.networks['G']
  if networks.repo == R3GAN:
    raise UserError('this is an R3GAN snapshot (brownvc/R3GAN), not a StyleGAN2: use an R3GAN '
                    'config (config.model.name=\'r3gan\'), or import it without --config.')
  classes = {module.class_name for _, module in generator.modules()}
  if 'SynthesisInput' in classes:
    raise UserError('this is a StyleGAN3 (-T/-R) generator (it has a SynthesisInput layer); '
                    'facegan_jax builds StyleGAN2 only: use a stylegan2-*.pkl.')
  if generator.class_name != 'Generator' or not {'mapping', 'synthesis'} <= set(
      generator.children):
    raise UserError(f'G is a {generator.class_name} with parts {sorted(generator.children)}, '
                    'not a StyleGAN2 Generator with a mapping and a synthesis network.')
  kwargs = construction_kwargs(networks)
  g_kwargs, mapping, d_kwargs = kwargs['G'], kwargs['mapping'], kwargs['D']
  for name, kwargs_, supported in (('G', g_kwargs, 'skip'), ('D', d_kwargs, 'resnet')):
    if kwargs_['architecture'] != supported:
      raise UserError(f'{name} has the {kwargs_["architecture"]!r} architecture; facegan_jax\'s '
                      f'StyleGAN2 builds {name} {supported!r} only.')
    if list(kwargs_['resample_filter']) != [1, 3, 3, 1]:
      raise UserError(f'{name} resamples with the filter {kwargs_["resample_filter"]}; '
                      'facegan_jax\'s StyleGAN2 uses [1, 3, 3, 1] only.')
  _check_layers(networks, kwargs)
  if 'D' in networks.networks:
    for field in ('channel_base', 'channel_max', 'conv_clamp', 'img_resolution',
                  'img_channels', 'c_dim'):
      if d_kwargs[field] != g_kwargs[field]:
        raise UserError(f'D was built with {field}={d_kwargs[field]!r} and G with '
                        f'{g_kwargs[field]!r}; facegan_jax\'s StyleGAN2 has one {field} for '
                        'both.')
  if not isinstance(d_kwargs['mbstd_group_size'], int):
    raise UserError(f'D\'s minibatch-stddev group size is {d_kwargs["mbstd_group_size"]!r}; '
                    'facegan_jax\'s StyleGAN2 needs a fixed group size.')
  return dict(
      name='stylegan2', resolution=g_kwargs['img_resolution'],
      channels=g_kwargs['img_channels'], latent_dim=g_kwargs['z_dim'], w_dim=g_kwargs['w_dim'],
      channel_base=g_kwargs['channel_base'], channel_max=g_kwargs['channel_max'],
      mapping_layers=mapping['num_layers'],
      mapping_lr_multiplier=float(mapping['lr_multiplier']),
      w_avg_beta=float(mapping['w_avg_beta']), mbstd_group_size=d_kwargs['mbstd_group_size'],
      mbstd_num_channels=d_kwargs['mbstd_num_channels'],
      conv_clamp=float(g_kwargs['conv_clamp'] or 0), c_dim=g_kwargs.get('c_dim', 0))


def _check_layers(networks, kwargs):
  """UserError unless the layers' own attributes (what the code actually built) agree with the
  construction arguments and class defaults: a file from a fork with other defaults."""
  g_kwargs, mapping, d_kwargs = kwargs['G'], kwargs['mapping'], kwargs['D']
  resolution = g_kwargs['img_resolution']
  expected = [('G', 'mapping', 'num_layers', mapping['num_layers']),
              ('G', 'mapping', 'w_avg_beta', mapping['w_avg_beta']),
              ('G', 'mapping.fc0', 'bias_gain', mapping['lr_multiplier']),
              ('G', f'synthesis.b{resolution}', 'architecture', g_kwargs['architecture']),
              ('G', f'synthesis.b{resolution}.conv1', 'conv_clamp', g_kwargs['conv_clamp']),
              ('D', f'b{resolution}', 'architecture', d_kwargs['architecture']),
              ('D', 'b4.conv', 'conv_clamp', d_kwargs['conv_clamp']),
              ('D', 'b4.mbstd', 'group_size', d_kwargs['mbstd_group_size']),
              ('D', 'b4.mbstd', 'num_channels', d_kwargs['mbstd_num_channels']),
              # A conditional D's label mapping: NVIDIA's MappingNetwork defaults, which
              # facegan_jax's StyleGAN2 builds (models.stylegan2.D_MAPPING_LAYERS).
              ('D', 'mapping', 'num_layers', stylegan2.D_MAPPING_LAYERS),
              ('D', 'mapping.fc0', 'bias_gain', stylegan2.D_MAPPING_LR_MULTIPLIER),
              ('D', 'b4', 'cmap_dim', stylegan2.channels_at(
                  4, d_kwargs['channel_base'], d_kwargs['channel_max']) if d_kwargs.get(
                      'c_dim') else 0)]
  modules = {name: dict(module.modules()) for name, module in networks.networks.items()}
  for network, path, attribute, value in expected:
    built = modules.get(network, {}).get(path)
    if built is not None and attribute in built.attributes and (
        built.attributes[attribute] != value):
      raise UserError(f'{network}.{path}.{attribute} is {built.attributes[attribute]!r}, but the '
                      f'construction arguments with {networks.repo}\'s class defaults give '
                      f'{value!r}: the file comes from other code; set config.model by hand.')
