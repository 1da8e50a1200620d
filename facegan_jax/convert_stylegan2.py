"""NVIDIA StyleGAN2 weights -> facegan_jax variables, without PyTorch.

The input is a reference state_dict (NVlabs stylegan3 / stylegan2-ada-pytorch
`networks_stylegan2.Generator` / `Discriminator`, c_dim 0, G 'skip', D 'resnet') as arrays keyed
`G/<state_dict key>` and `D/<state_dict key>`, e.g. saved with
`np.savez(path, **{f'G/{k}': v.cpu().numpy() for k, v in G.state_dict().items()}, ...)`.
Parameters keep their names; layouts change from NCHW/[out, in] to NHWC/HWIO/[in, out]. The
tracked w average and the constant noise maps go to the generator's 'batch_stats'.
"""

import flax
import jax
import numpy as np

from facegan_jax.errors import UserError
from facegan_jax.models import stylegan2_ops

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
    if path[0] == 'mapping' and path[1].startswith('embed'):
      raise UserError(f'{key}: conditional networks (c_dim > 0) are not supported; convert an '
                      'unconditional one.')
    target = buffers if path[-1] in _BUFFERS else params
    target[path] = _convert_array(path, value)
  if not params:
    raise UserError(f'no arrays with keys starting {prefix!r}; export the state_dict with keys '
                    'G/<name> and D/<name>.')
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
                      'resolution, channel_base, channel_max, mapping_layers, latent_dim and '
                      'w_dim.')


def load_reference_npz(path, generator, discriminator, latent_dim, image_shape):
  """(generator variables, discriminator variables) from an .npz of G/ and D/ arrays, checked
  against the modules' own shapes (UserError on a mismatch). D is {} if the file has none."""
  with np.load(path) as arrays:
    state_dict = dict(arrays)
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
