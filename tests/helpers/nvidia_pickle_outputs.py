"""Runs NVIDIA network pickles through facegan_jax's StyleGAN2 in a process where torch cannot
be imported; saves the outputs of each as the fixture names them, in an .npz.

    python tests/helpers/nvidia_pickle_outputs.py OUT.npz INPUTS.npz NAME.pkl...

INPUTS.npz holds `<name>/z` and `<name>/c` (labels [N, c_dim]) for each pickle NAME.pkl. For each:
its config.model from the file, the networks through convert_stylegan2.read_networks (the
import's path), then G_ema's w and images (constant noise) at truncation 1 and 0.7, G's at 1,
and D's logits on G_ema's images.
"""

import os
import sys

sys.modules['torch'] = None  # pylint: disable=wrong-import-position
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from configs import default  # pylint: disable=wrong-import-position
from facegan_jax import models  # pylint: disable=wrong-import-position
from facegan_jax.pretrained import convert_stylegan2  # pylint: disable=wrong-import-position
from facegan_jax.pretrained import nvidia_pickle  # pylint: disable=wrong-import-position


def outputs(path, z, c):
  """{fixture output name: array (NCHW images)} of the pickle at `path` for latents z and
  labels c (None: unconditional)."""
  config = default.get_config()
  config.model.update(nvidia_pickle.stylegan2_model_fields(nvidia_pickle.read(path)))
  config.model.modconv_lowering = 'grouped'
  networks = convert_stylegan2.read_networks(config, path)
  generator, discriminator = models.build_models(config.model)
  mapping = jax.jit(lambda variables, z, psi: generator.apply(variables, z, psi, c,
                                                              method='map'), static_argnums=2)
  synthesize = jax.jit(lambda variables, ws: generator.apply(variables, ws, 'const',
                                                             method='synthesize'))
  logits = jax.jit(lambda images: discriminator.apply(networks.discriminator, images, c=c))
  ema = dict(networks.generator, params=networks.ema_params)
  results = {}
  for name, variables, psis in (('G_ema', ema, (1, 0.7)), ('G', networks.generator, (1,))):
    for psi in psis:
      suffix = 'psi1' if psi == 1 else 'psi07'
      ws = mapping(variables, jnp.asarray(z), psi)
      images = synthesize(variables, ws)
      results[f'{name}_ws_{suffix}'] = np.asarray(ws)
      results[f'{name}_img_{suffix}'] = np.asarray(images).transpose(0, 3, 1, 2)
      if name == 'G_ema':
        results[f'D_logits_on_G_ema_img_{suffix}'] = np.asarray(logits(images))[:, None]
  return results


def main(out, inputs, *paths):
  with np.load(inputs) as arrays:
    latents = dict(arrays)
  results = {}
  for path in paths:
    name = os.path.basename(path)[:-len('.pkl')]
    labels = latents[f'{name}/c']
    results.update({f'{name}/{key}': value for key, value in outputs(
        path, latents[f'{name}/z'], jnp.asarray(labels) if labels.size else None).items()})
  assert sys.modules['torch'] is None, 'torch was imported'
  np.savez(out, **results)


if __name__ == '__main__':
  main(*sys.argv[1:])
