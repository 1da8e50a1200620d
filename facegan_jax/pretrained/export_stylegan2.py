"""facegan_jax StyleGAN2 variables -> NVIDIA's state_dicts, the way back of convert_stylegan2.

`state_dict` lays our parameters out as NVlabs stylegan3 / stylegan2-ada-pytorch's
`Generator` and `Discriminator` hold them (NCHW / OIHW / [out, in], the epilogue's dense layer
on NCHW-flattened features), adds the buffers they keep (each resampling layer's [1,3,3,1]
filter; the w average and constant noise from our 'batch_stats') and orders the names as their
`state_dict()` does (a module's own parameters, its own buffers, then its submodules in the
order their `__init__` registers them), so that `load_state_dict` takes them (strict).
"""

import io
import re

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from facegan_jax import models
from facegan_jax.models import stylegan2_ops
from facegan_jax.pretrained import torch_save
from facegan_jax.runs import checkpointing
from facegan_jax.runs import storage
from facegan_jax.sampling import generation
from facegan_jax.system.errors import UserError

# A module's own parameters, then its own buffers, in the order NVIDIA's layers register them.
_OWN_ORDER = ('const', 'weight', 'noise_strength', 'bias', 'resample_filter', 'noise_const',
              'w_avg')
# Submodules in registration order; the blocks b<resolution> are ordered by `_block_rank`.
_CHILD_ORDER = ('synthesis', 'mapping', 'embed', 'fromrgb', 'conv0', 'conv1', 'torgb', 'skip',
                'conv', 'fc', 'out', 'affine')
# Modules that hold NVIDIA's resample_filter buffer (dotted paths): every synthesis block and
# layer of G; every block (not the 4x4 epilogue) and convolution of D.
_FILTERED = {'G': r'synthesis\.b\d+(\.conv[01])?',
             'D': r'b(?!4$)\d+|b\d+\.(fromrgb|conv0|conv1|skip)|b4\.conv'}


def _export_array(path, value):
  """One of our arrays in NVIDIA's layout; `path` is its state_dict name split at dots."""
  name = path[-1]
  if path == ('b4', 'fc', 'weight'):  # D's epilogue: NHWC-flattened inputs -> NCHW-flattened
    features = value.shape[1]
    return value.reshape(4, 4, -1, features).transpose(3, 2, 0, 1).reshape(features, -1)
  if name == 'weight' and value.ndim == 4:
    return value.transpose(3, 2, 0, 1)
  if name == 'weight' and value.ndim == 2:
    return value.T
  if name == 'const':
    return value.transpose(2, 0, 1)
  return value


def _rank(network, path):
  """Sort key of a state_dict name (split at dots) in NVIDIA's state_dict order."""
  key = []
  for depth, part in enumerate(path):
    last = depth == len(path) - 1
    block = re.fullmatch(r'b(\d+)', part)
    if last and part in _OWN_ORDER:
      key.append((0, _OWN_ORDER.index(part)))
    elif block and network == 'D' and depth == 0:
      # D registers its blocks from the image's resolution down, then its label mapping, then
      # the 4x4 epilogue.
      resolution = int(block.group(1))
      key.append((1, 2, 0) if resolution == 4 else (1, 0, -resolution))
    elif block:
      key.append((1, int(block.group(1))))
    elif network == 'D' and depth == 0 and part == 'mapping':
      key.append((1, 1, 0))
    elif re.fullmatch(r'fc\d+', part):
      key.append((1, _CHILD_ORDER.index('embed') + 0.5, int(part[2:])))
    else:
      key.append((1, _CHILD_ORDER.index(part)))
  return key


def state_dict(network: str, params, batch_stats=None) -> dict[str, np.ndarray]:
  """{name: float32 array} of NVIDIA's `network` ('G' or 'D') state_dict, in its order, from our
  variables (params; for G its 'batch_stats': w_avg and noise_const)."""
  flat = flax.traverse_util.flatten_dict(params)
  flat.update(flax.traverse_util.flatten_dict(batch_stats or {}))
  arrays = {path: np.array(_export_array(path, np.asarray(value)), np.float32, order='C')
            for path, value in flat.items()}
  fir = np.asarray(stylegan2_ops.setup_filter(), np.float32)
  modules = {path[:-1] for path in arrays} | {path[:depth] for path in arrays
                                              for depth in range(1, len(path))}
  for module in modules:
    if re.fullmatch(_FILTERED[network], '.'.join(module)):
      arrays[module + ('resample_filter',)] = fir
  return {'.'.join(path): arrays[path]
          for path in sorted(arrays, key=lambda path: _rank(network, path))}


def state_dicts(g_params, g_batch_stats, g_ema_params, d_params) -> dict[str, np.ndarray]:
  """{'G/<name>', 'D/<name>', 'G_ema/<name>': array}, in the order of NVIDIA's snapshots: the
  layout of the .npz that convert_stylegan2 reads. G_ema shares G's buffers, as in NVIDIA's
  training loop."""
  networks = {'G': state_dict('G', g_params, g_batch_stats), 'D': state_dict('D', d_params),
              'G_ema': state_dict('G', g_ema_params, g_batch_stats)}
  return {f'{network}/{name}': value for network, arrays in networks.items()
          for name, value in arrays.items()}


def read_run(workdir: str, step: int | None = None) -> tuple[int, dict[str, np.ndarray]]:
  """(step, `state_dicts` of the StyleGAN2 run's checkpoint of `step`, the newest if None). G_ema
  is the run's EMA generator, or G when the run keeps none. UserError for a workdir without
  checkpoints, a missing step or a run of another model."""
  storage.check_reachable(workdir, '--workdir')
  if not checkpointing.checkpoint_dir(workdir).is_dir():
    raise UserError(f'no checkpoint in {checkpointing.checkpoint_dir(workdir)}; give the '
                    '--workdir of a StyleGAN2 run.')
  with checkpointing.make_manager(workdir, create=False) as manager:
    steps = sorted(manager.all_steps())
    step = steps[-1] if step is None and steps else step
    if step not in steps:
      raise UserError(f'no checkpoint of step {step} in {checkpointing.checkpoint_dir(workdir)}; '
                      f'steps there: {", ".join(map(str, steps)) or "none"}.')
    config = ml_collections.ConfigDict(checkpointing.restore_run(manager, step)['config'])
    if config.model.name != 'stylegan2':
      raise UserError(f'{workdir} is a {config.model.name!r} run; only StyleGAN2 networks have '
                      'NVIDIA state_dicts.')
    generator, discriminator = models.build_models(config.model)
    z = jax.ShapeDtypeStruct((1, config.model.latent_dim), jnp.float32)
    images = jax.ShapeDtypeStruct((1,) + tuple(models.image_shape(config.model)), jnp.float32)
    g_vars = jax.eval_shape(lambda z: generator.init(jax.random.key(0), z, train=False), z)
    d_vars = jax.eval_shape(lambda x: discriminator.init(jax.random.key(0), x), images)
    abstract = {'g_params': g_vars['params'], 'g_batch_stats': g_vars['batch_stats'],
                'd_params': d_vars['params']}
    if generation.uses_ema(config.ema):
      abstract['g_ema_params'] = g_vars['params']
    restored = checkpointing.restore_fields(manager, step, abstract)
  return step, state_dicts(restored['g_params'], restored['g_batch_stats'],
                           restored.get('g_ema_params', restored['g_params']),
                           restored['d_params'])


def write(path: str, arrays: dict[str, np.ndarray]):
  """Writes `state_dicts` to `path` (local or gs://): an .npz of the 'G/<name>' arrays, or a .pt
  that torch.load reads as {'G': state_dict, 'D': ..., 'G_ema': ...} (torch_save_bytes)."""
  if path.endswith('.npz'):
    stream = io.BytesIO()
    np.savez(stream, **arrays)
    storage.write_bytes(path, stream.getvalue())
  elif path.endswith('.pt'):
    networks = {}
    for key, value in arrays.items():
      network, name = key.split('/', 1)
      networks.setdefault(network, {})[name] = value
    storage.write_bytes(path, torch_save.dumps(networks))
  else:
    raise UserError(f'--out={path}: write .npz (numpy) or .pt (torch.load); the name must end '
                    'with one of them.')
