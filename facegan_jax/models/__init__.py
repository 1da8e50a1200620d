"""Generators and discriminators: one module per family, and the registry that builds them.

Each family module defines `check_config(model)` (UserError naming a bad `config.model` field)
and `build(model, dtype) -> (generator, discriminator)`. Every model takes and returns float32
and computes its dense layers and convolutions in `dtype` (config.train.compute_dtype);
parameters stay float32 and normalisation statistics are computed in float32. R3GAN with
model.bf16_stages > 0 computes those stages in bfloat16 and its generator returns bfloat16
images, as the reference's (`generation.generate` samples in float32).
"""

import jax.numpy as jnp
import ml_collections

from facegan_jax.models import dcgan
from facegan_jax.models import mlp
from facegan_jax.models import r3gan
from facegan_jax.models import sngan
from facegan_jax.models import stylegan2
from facegan_jax.system.errors import UserError

FAMILIES = {'dcgan': dcgan, 'mlp': mlp, 'r3gan': r3gan, 'sngan': sngan, 'stylegan2': stylegan2}
# The families that config.model.c_dim > 0 makes label-conditional: DCGAN and SNGAN by
# models/conditional.py, StyleGAN2 as NVIDIA's (models/stylegan2.py), R3GAN as brownvc/R3GAN's
# (models/r3gan.py).
CONDITIONAL_FAMILIES = ('dcgan', 'r3gan', 'sngan', 'stylegan2')
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def check_model_config(model: ml_collections.ConfigDict):
  """Raises UserError naming the bad field of `config.model`."""
  if model.name not in FAMILIES:
    raise UserError(f'config.model.name={model.name!r} is unknown; use one of '
                    f'{tuple(FAMILIES)}.')
  c_dim = model.get('c_dim', 0)  # 0 in a model config without the field
  if c_dim and model.name not in CONDITIONAL_FAMILIES:
    raise UserError(f'config.model.c_dim={c_dim}: {model.name} is not conditional here; '
                    f'use one of {CONDITIONAL_FAMILIES} or set config.model.c_dim=0.')
  FAMILIES[model.name].check_config(model)


def compute_dtype(name: str):
  """The jnp dtype of config.train.compute_dtype; UserError if unknown."""
  if name not in COMPUTE_DTYPES:
    raise UserError(f'config.train.compute_dtype={name!r} is unknown; '
                    f'use one of {tuple(COMPUTE_DTYPES)}.')
  return COMPUTE_DTYPES[name]


def build_models(model: ml_collections.ConfigDict, dtype_name: str = 'float32'):
  """(generator, discriminator) Flax modules for `config.model`, computing in the dtype named
  `dtype_name` (config.train.compute_dtype)."""
  check_model_config(model)
  return FAMILIES[model.name].build(model, compute_dtype(dtype_name))


def image_shape(model: ml_collections.ConfigDict) -> tuple[int, int, int]:
  """(H, W, C) of the images that `config.model` generates and discriminates."""
  return (model.resolution, model.resolution, model.channels)
