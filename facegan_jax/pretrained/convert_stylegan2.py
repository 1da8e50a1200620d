"""NVIDIA StyleGAN2 weights -> facegan_jax variables and workdirs, without PyTorch.

The input is NVIDIA's network pickle itself (.pkl, read by facegan_jax.pretrained.nvidia_pickle
without running it), or a reference state_dict (NVlabs stylegan3 / stylegan2-ada-pytorch
`networks_stylegan2.Generator` / `Discriminator`, G 'skip', D 'resnet', conditional or not) as arrays keyed
`G/<state_dict key>`, optionally `G_ema/<key>` and `D/<key>`, e.g. saved from the dict `data`
of a network pickle with `np.savez(path, **{f'{name}/{k}': v.cpu().numpy() for name in ('G',
'G_ema', 'D') for k, v in data[name].state_dict().items()})`.
Parameters keep their names; layouts change from NCHW/[out, in] to NHWC/HWIO/[in, out]. The
tracked w average and the constant noise maps go to the generator's 'batch_stats'.
`write_workdir` (the command `python -m facegan_jax.import_stylegan2`) makes a run at step 0
of them, to sample and fine-tune. An R3GAN config's networks come from an R3GAN snapshot
through facegan_jax.pretrained.convert_r3gan, and go the same way into runs.
"""

import hashlib
import io

import flax
import jax
import ml_collections
import numpy as np

from facegan_jax import models
from facegan_jax.models import stylegan2_ops
from facegan_jax.pretrained import convert_r3gan
from facegan_jax.pretrained import nvidia_pickle
from facegan_jax.runs import checkpointing
from facegan_jax.runs import storage
from facegan_jax.runs import workdir_lock
from facegan_jax.system import command_line
from facegan_jax.system import parallel
from facegan_jax.system.errors import UserError
from facegan_jax.training import config_check
from facegan_jax.training import loop
from facegan_jax.training import state as state_lib
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib

_BUFFERS = ('w_avg', 'noise_const')


def _convert_array(path, value):
  """One reference array in our layout; `path` is its state_dict key split at dots."""
  name = path[-1]
  if path[-2:] == ('fc', 'weight') and path[0] == 'b4':
    # The epilogue flattens NCHW features; ours are NHWC.
    features = value.shape[0]
    size = int(round((value.shape[1] // features) ** 0.5))
    return value.reshape(features, -1, size, size).transpose(2, 3, 1, 0).reshape(-1, features)
  if name == 'weight' and value.ndim == 4:
    return value.transpose(2, 3, 1, 0)
  if name == 'weight' and value.ndim == 2:
    return value.T
  if name == 'const':
    return value.transpose(1, 2, 0)
  return value


def convert_state_dict(state_dict, prefix):
  """{'params', 'batch_stats'} of our model from the arrays whose keys start with `prefix`
  ('G/' or 'D/'); UserError for keys of networks this port does not build."""
  params, buffers = {}, {}
  fir = stylegan2_ops.setup_filter()
  for key, value in state_dict.items():
    if not key.startswith(prefix):
      continue
    path = tuple(key[len(prefix):].split('.'))
    value = np.asarray(value, np.float32)
    if path[-1] == 'resample_filter':
      if not np.array_equal(value, fir):
        raise UserError(f'{key} is not the [1,3,3,1] filter that this port uses; convert a '
                        'network with the default resample_filter.')
      continue
    target = buffers if path[-1] in _BUFFERS else params
    target[path] = _convert_array(path, value)
  if not params:
    names = ', '.join(sorted(state_dict)[:2]) or 'no arrays'
    raise UserError(f'the weights hold no arrays keyed {prefix}... ({names}, ...): they are not '
                    'StyleGAN2 networks; export the state_dicts with keys G/<name> and D/<name>.')
  unflatten = lambda flat: flax.traverse_util.unflatten_dict(flat) if flat else {}
  return {'params': unflatten(params), 'batch_stats': unflatten(buffers)}


def check_shapes(variables, expected, what):
  """UserError naming the first array whose shape differs from the model's `expected` (abstract)
  variables, or that one side lacks."""
  ours = {jax.tree_util.keystr(p): v.shape for p, v in
          jax.tree_util.tree_leaves_with_path(variables)}
  theirs = {jax.tree_util.keystr(p): v.shape for p, v in
            jax.tree_util.tree_leaves_with_path(expected)}
  for key in sorted(set(ours) | set(theirs)):
    if ours.get(key) != theirs.get(key):
      raise UserError(f'{what} {key}: the converted weights have shape {ours.get(key)}, the '
                      f'configured model {theirs.get(key)}; set config.model to the network\'s '
                      'resolution, channels, channel_base, channel_max, mapping_layers, '
                      'latent_dim and w_dim.')


def read_npz(path: str) -> dict[str, np.ndarray]:
  """The arrays of an .npz file, local or gs://; UserError if there is none at `path`."""
  if not storage.path(path).is_file():
    raise UserError(f'--weights={path}: no such file; export the networks to .npz (see python '
                    '-m facegan_jax.import_stylegan2 --help).')
  return command_line.read_npz(io.BytesIO(storage.read_bytes(path)), f'--weights={path}',
                               'an .npz of StyleGAN2 networks (arrays keyed G/..., D/...) or '
                               'an NVIDIA network pickle (.pkl)')


def read_weights(path: str, model: ml_collections.ConfigDict | None = None):
  """The G/, G_ema/, D/ arrays of an .npz, or of an NVIDIA network pickle (.pkl). A pickle must
  hold a network that `model` (config.model, if given) builds: UserError naming the first field
  that differs from the network's (nvidia_pickle.stylegan2_model_fields)."""
  if not path.endswith('.pkl'):
    return read_npz(path)
  networks = nvidia_pickle.read(path)
  for field, value in nvidia_pickle.stylegan2_model_fields(networks).items():
    if model is not None and model[field] != value:
      raise UserError(f'config.model.{field}={model[field]!r}, but {path} holds a network '
                      f'built with {value!r}; set --config.model.{field}={value!r}.')
  return networks.state_dicts()


def model_fields(networks: nvidia_pickle.NetworkPickle) -> dict:
  """config.model fields that build the networks of a pickle: NVIDIA's StyleGAN2
  (nvidia_pickle.stylegan2_model_fields) or an R3GAN snapshot (convert_r3gan.model_fields)."""
  if networks.repo == nvidia_pickle.R3GAN:
    return convert_r3gan.model_fields(networks)
  return nvidia_pickle.stylegan2_model_fields(networks)


def set_model_from_file(config: ml_collections.ConfigDict, path: str, keep=()):
  """Sets config.model to the network of the pickle at `path` (`model_fields`), but for the
  fields named in `keep` (set by the user: `read_networks` then checks that they agree with the
  file)."""
  if not path.endswith('.pkl'):
    raise UserError(f'--weights={path} is not a network pickle (.pkl), which states its '
                    'networks\' configuration; give the --config of the networks in the .npz.')
  fields = model_fields(nvidia_pickle.read(path))
  config.model.update({field: value for field, value in fields.items() if field not in keep})


def load_reference_npz(path, generator, discriminator, latent_dim, image_shape):
  """(generator variables, discriminator variables) from an .npz of G/ and D/ arrays."""
  return convert_networks(read_npz(path), generator, discriminator, latent_dim, image_shape)


def convert_networks(state_dict, generator, discriminator, latent_dim, image_shape):
  """(generator variables, discriminator variables) from G/ and D/ arrays, checked against the
  modules' own shapes (UserError on a mismatch). D is {} if there are no D/ arrays."""
  z = jax.ShapeDtypeStruct((1, latent_dim), np.float32)
  expected = jax.eval_shape(lambda z: generator.init(jax.random.key(0), z, train=False), z)
  g_vars = convert_state_dict(state_dict, 'G/')
  check_shapes(g_vars, expected, 'generator')
  if not any(key.startswith('D/') for key in state_dict):
    return g_vars, {}
  images = jax.ShapeDtypeStruct((1,) + tuple(image_shape), np.float32)
  expected = jax.eval_shape(lambda x: discriminator.init(jax.random.key(0), x), images)
  d_vars = convert_state_dict(state_dict, 'D/')
  d_vars = {'params': d_vars['params']}
  check_shapes(d_vars, expected, 'discriminator')
  return g_vars, d_vars


Networks = state_lib.InitialNetworks


def read_networks(config: ml_collections.ConfigDict, weights_path: str) -> Networks:
  """The networks of `weights_path` for `config`'s StyleGAN2, checked against its shapes, or
  for its R3GAN those of an R3GAN snapshot (convert_r3gan.read_networks).

  G/ gives the generator with its w average and constant noise; G_ema/ the EMA generator (G's
  weights when the file has no G_ema/); D/, if present, the discriminator.
  """
  if config.model.name == 'r3gan' and weights_path.endswith('.pkl'):
    return convert_r3gan.read_networks(config, weights_path)
  if config.model.name != 'stylegan2':
    raise UserError(f'config.model.name is {config.model.name!r}; converting networks needs a '
                    'StyleGAN2 config such as configs/ffhq.py, or an R3GAN one for an R3GAN '
                    'snapshot (.pkl).')
  state_dict = read_weights(weights_path, config.model)
  generator, discriminator = models.build_models(config.model)
  g_vars, d_vars = convert_networks(state_dict, generator, discriminator,
                                    config.model.latent_dim, models.image_shape(config.model))
  if not any(key.startswith('G_ema/') for key in state_dict):
    return Networks(g_vars, g_vars['params'], d_vars)
  ema_vars = convert_state_dict(state_dict, 'G_ema/')
  check_shapes(ema_vars, g_vars, 'EMA generator')
  return Networks(g_vars, ema_vars['params'], d_vars)


def initial_state(config: ml_collections.ConfigDict, networks: Networks) -> state_lib.TrainState:
  """Step 0 of `config`'s run holding `networks` (the EMA's only if the config keeps an EMA;
  without a D, D starts from config.seed's initialisation). The optimiser states start at zero
  and the run's key comes from config.seed, as for a run from scratch."""
  trainer = trainer_lib.make_trainer(config)
  init, _, _ = step_lib.compile_functions(trainer, parallel.make_mesh(),
                                       models.image_shape(config.model))
  return state_lib.start_from(trainer, init(jax.random.key(config.seed)), networks)


def read_initial_networks(config: ml_collections.ConfigDict) -> Networks:
  """The networks of config.init.from_pkl for a new run of `config` (`read_networks`: UserError,
  one line naming both values, for a config.model field that differs from the file's), and
  config.init.from_pkl_sha256 set to the file's sha256 (UserError if it was set to another)."""
  path = config.init.from_pkl
  if not path.endswith('.pkl'):
    raise UserError(f'config.init.from_pkl={path!r} is not a network pickle (.pkl); give the '
                    'path of an NVIDIA StyleGAN2 .pkl or an R3GAN snapshot, or import an .npz '
                    'with python -m facegan_jax.import_stylegan2.')
  if not storage.path(path).is_file():
    raise UserError(f'config.init.from_pkl={path}: no such file.')
  digest = hashlib.sha256(storage.read_bytes(path)).hexdigest()
  if config.init.from_pkl_sha256 not in ('', digest):
    raise UserError(f'config.init.from_pkl_sha256={config.init.from_pkl_sha256}, but {path} has '
                    f'sha256 {digest}: the file changed; use the file with that digest, or '
                    'start a new run from this one.')
  config.init.from_pkl_sha256 = digest
  return read_networks(config, path)


def write_workdir(config: ml_collections.ConfigDict, weights_path: str, workdir: str):
  """Writes the checkpoint of step 0 of a run holding the networks of `weights_path`
  (`read_networks`, `initial_state`) in `workdir`, with config.json.

  UserError, writing nothing, for a bad config or weights file, or a workdir that already holds
  checkpoints (they are never overwritten).
  """
  # A run imported only to sample needs no images: its folder may be left unset.
  config_check.check(config, data=config.data.source != 'folder' or bool(config.data.path))
  storage.check_reachable(workdir, '--workdir')
  networks = read_networks(config, weights_path)
  with workdir_lock.hold(workdir):
    if checkpointing.checkpoint_dir(workdir).is_dir():
      with checkpointing.make_manager(workdir, create=False) as existing:
        steps = existing.all_steps()
      if steps:
        raise UserError(f'{workdir} already holds checkpoints (steps '
                        f'{", ".join(map(str, sorted(steps)))}); choose a new --workdir for the '
                        'converted networks.')
    state = initial_state(config, networks)
    with checkpointing.make_manager(workdir) as manager:
      checkpointing.save(manager, state, config)
      checkpointing.wait_until_finished(manager)
    loop.write_config(workdir, config)
