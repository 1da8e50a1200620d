"""Mimicry's SNGAN (the reference of facegan_jax.models.sngan) run beside ours, and the conversion
of its state_dict into our variables. Test-only: imports torch and torch_mimicry.

torch_mimicry's package __init__ imports tensorflow and torchvision; only its `nets` and
`modules` are needed, so the top-level package is stubbed with its real path (as for the shared
fixtures, /work/shared/fixtures/README.md).
"""

import importlib.util
import sys
import types

import numpy as np
import torch

# One thread: with more, PyTorch's CPU reductions split by the machine's load and vary by ~4e-5.
torch.set_num_threads(1)


def _stub_package(name, parent_path=None):
  """Registers package `name` without running its __init__ (its submodules still import)."""
  if name not in sys.modules:
    package = types.ModuleType(name)
    package.__path__ = ([f'{parent_path}/{name.rsplit(".", 1)[-1]}'] if parent_path else
                        list(importlib.util.find_spec(name).submodule_search_locations))
    sys.modules[name] = package
  return sys.modules[name].__path__[0]


def _import_sngan_nets():
  _stub_package('torch_mimicry')
  from torch_mimicry.nets import sngan  # pylint: disable=import-outside-toplevel
  return sngan


def import_training():
  """Mimicry's `training.metric_log` and `training.scheduler` (its trainer needs tensorboard)."""
  _stub_package('torch_mimicry.training', _stub_package('torch_mimicry'))
  # pylint: disable=import-outside-toplevel
  from torch_mimicry.training import metric_log, scheduler
  return metric_log, scheduler


NETWORKS = {32: ('SNGANGenerator32', 'SNGANDiscriminator32'),
            64: ('SNGANGenerator64', 'SNGANDiscriminator64'),
            128: ('SNGANGenerator128', 'SNGANDiscriminator128')}


def build(resolution, ngf=None, ndf=None, perturb_batchnorm=True):
  """Mimicry's (G, D) as the shared fixture constructs them: seed 0, G first, then (seed 3)
  BatchNorm scales 1 + 0.1 N(0, 1) and offsets 0.1 N(0, 1) so that they matter. None: Mimicry's
  default width."""
  sngan = _import_sngan_nets()
  g_class, d_class = (getattr(sngan, name) for name in NETWORKS[resolution])
  torch.manual_seed(0)
  generator = g_class(**({} if ngf is None else {'ngf': ngf}))
  discriminator = d_class(**({} if ndf is None else {'ndf': ndf}))
  if perturb_batchnorm:
    torch.manual_seed(3)
    with torch.no_grad():
      for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
          module.weight.copy_(1 + 0.1 * torch.randn_like(module.weight))
          module.bias.copy_(0.1 * torch.randn_like(module.bias))
  return generator, discriminator


def count_parameters(module):
  return sum(p.numel() for p in module.parameters())


def to_nhwc(images):
  """A torch NCHW tensor as a numpy NHWC array."""
  return images.detach().numpy().transpose(0, 2, 3, 1)


def _put(tree, path, value):
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = np.asarray(value, np.float32)


def _dense_to_nhwc_order(weight, bias, channels):
  """l1 of G: outputs ordered (c, y, x) by PyTorch's view -> ordered (y, x, c) for our reshape."""
  kernel = weight.reshape(channels, -1, weight.shape[1]).transpose(1, 0, 2).reshape(weight.shape)
  return kernel.T, bias.reshape(channels, -1).T.ravel()


def to_variables(state_dict, bottom_width=4):
  """A Mimicry G or D state_dict (tensors or arrays) -> our {'params', 'batch_stats'}."""
  # Copies: numpy views of torch tensors would change with in-place updates of the buffers.
  state = {name: np.array(value.detach().numpy() if isinstance(value, torch.Tensor) else value,
                          np.float32) for name, value in state_dict.items()}
  params, stats = {}, {}
  for name, value in state.items():
    *path, leaf = name.split('.')
    if leaf == 'num_batches_tracked':
      continue
    if leaf in ('weight', 'weight_orig') and value.ndim == 4:
      _put(params, path + ['kernel'], value.transpose(2, 3, 1, 0))
    elif leaf in ('weight', 'weight_orig') and value.ndim == 2:
      if path == ['l1']:  # the generator's first layer
        channels = value.shape[0] // bottom_width**2
        kernel, bias = _dense_to_nhwc_order(value, state['l1.bias'], channels)
        _put(params, path + ['kernel'], kernel)
        _put(params, path + ['bias'], bias)
      else:
        _put(params, path + ['kernel'], value.T)
    elif leaf == 'weight':  # BatchNorm
      _put(params, path + ['scale'], value)
    elif leaf == 'bias' and path != ['l1']:
      _put(params, path + ['bias'], value)
    elif leaf in ('running_mean', 'running_var'):
      _put(stats, path + [leaf[len('running_'):]], value)
    elif leaf == 'weight_u':
      _put(stats, path + ['u'], value)
    elif leaf == 'weight_v':
      weight = state['.'.join(path) + '.weight_orig']
      if weight.ndim == 4:  # PyTorch flattens (C_in, kh, kw), we flatten (kh, kw, C_in)
        value = value.reshape(weight.shape[1:]).transpose(1, 2, 0).ravel()
      _put(stats, path + ['v'], value)
  return {'params': params, 'batch_stats': stats}
