"""brownvc/R3GAN's network snapshots -> config.model and facegan_jax variables, without PyTorch.

R3GAN's training loop writes `network-snapshot-*.pkl` (its published FFHQ, CIFAR-10 and
ImageNet networks are such files): G, D and G_ema pickled as torch modules by class reference,
which facegan_jax.pretrained.nvidia_pickle reads without running anything. They record no
construction arguments, so `model_fields` reads the networks' layout from their layers: the
stages of G (width, cardinality and number of residual blocks of each), the expansion, z, the
label embedding, the image channels and the stages that compute in bfloat16. `read_networks`
converts the weights (models/r3gan.py, params_from_reference) for a config whose model builds
that layout. The snapshot's optimiser states and image count are not carried over: a run started
from it has fresh Adam states and schedules from 0, as any run from pretrained networks.
"""

import functools

import ml_collections

from facegan_jax import models
from facegan_jax.models import r3gan
from facegan_jax.pretrained import nvidia_pickle
from facegan_jax.system.errors import UserError
from facegan_jax.training import state as state_lib

_BFLOAT16 = 'torch.bfloat16'


def _stages(network: nvidia_pickle.Module, stage_class: str, name: str):
  """[(path, stage Module)] of a G or D snapshot module, in order; UserError if it has none."""
  modules = dict(network.modules())
  stages = []
  while f'Model.MainLayers.{len(stages)}' in modules:
    path = f'Model.MainLayers.{len(stages)}'
    stages.append((path, modules[path]))
  if not stages or any(not stage.class_name.endswith(stage_class) for _, stage in stages):
    raise UserError(f'{name} is not an R3GAN network: expected Model.MainLayers of '
                    f'{stage_class}s, found {[stage.class_name for _, stage in stages][:2]}.')
  return modules, stages


def _layer(modules, path, attribute):
  """An attribute of the torch layer at `path` (UserError if the snapshot lacks it)."""
  module = modules.get(path)
  if module is None or attribute not in module.attributes:
    raise UserError(f'the snapshot has no layer {path} with {attribute}: it is not an R3GAN '
                    'network of brownvc/R3GAN\'s code.')
  return module.attributes[attribute]


def _blocks(modules, stage_path):
  """The paths of the residual blocks of a stage, in order."""
  return [path for path, module in modules.items()
          if path.startswith(f'{stage_path}.Layers.') and path.count('.') == 4
          and module.class_name.endswith('ResidualBlock')]


def _layout(modules, stages, stage_width):
  """(widths, cardinalities, blocks, expansions) of a network's stages, in its own order;
  `stage_width(stage_path, previous_width)` gives the width of a stage without blocks."""
  widths, cardinalities, blocks, expansions = [], [], [], set()
  for path, _ in stages:
    block_paths = _blocks(modules, path)
    blocks.append(len(block_paths))
    if not block_paths:
      widths.append(stage_width(path, widths[-1] if widths else None))
      cardinalities.append(1)
      continue
    width = _layer(modules, f'{block_paths[0]}.LinearLayer1.Layer', 'in_channels')
    widths.append(width)
    cardinalities.append(_layer(modules, f'{block_paths[0]}.LinearLayer2.Layer', 'groups'))
    for block in block_paths:
      expansions.add(_layer(modules, f'{block}.LinearLayer1.Layer', 'out_channels') // width)
  return tuple(widths), tuple(cardinalities), tuple(blocks), expansions


def _generator_stage_width(modules, path, previous):
  """A generator stage's width from its basis or upsampling (`previous`, the previous stage's
  width, if the upsampling keeps it)."""
  if path == 'Model.MainLayers.0':
    return int(modules[f'{path}.Layers.0'].parameters['Basis'].shape[0])
  change = modules.get(f'{path}.Layers.0.LinearLayer.Layer')
  return change.attributes['out_channels'] if change is not None else previous


def _discriminator_stage_width(modules, path, previous):
  """A discriminator stage's width: the extraction's (first stage) or the previous
  downsampling's."""
  if previous is None:
    return _layer(modules, 'Model.ExtractionLayer.Layer', 'out_channels')
  before = f'Model.MainLayers.{int(path.rsplit(".", 1)[1]) - 1}'
  change = [module for name, module in modules.items()
            if name.startswith(f'{before}.Layers.') and name.endswith('.LinearLayer.Layer')]
  return change[0].attributes['out_channels'] if change else previous


def _bfloat16_count(stages, from_end: bool, name: str) -> int:
  """How many stages at the end (G) or start (D) compute in bfloat16; UserError if others do."""
  flags = [stage.attributes.get('DataType') == _BFLOAT16 for _, stage in stages]
  flags = flags[::-1] if from_end else flags
  count = flags.index(False) if False in flags else len(flags)
  if any(flags[count:]):
    raise UserError(f'{name}\'s bfloat16 stages are not its {"last" if from_end else "first"} '
                    'ones; facegan_jax\'s R3GAN (config.model.bf16_stages) computes only those in '
                    'bfloat16.')
  return count


def model_fields(networks: nvidia_pickle.NetworkPickle) -> dict:
  """config.model fields of facegan_jax's R3GAN that build the snapshot's networks: name,
  resolution, channels, latent_dim, expansion, c_dim, bf16_stages and the per-stage fields
  stage_widths, stage_cardinalities, stage_blocks (comma-separated, G's from 4x4 up).

  UserError, one line, for what this port cannot build: a D that is not G's stages reversed, a
  label embedding of other widths than the reference's (G: z's, D: G's 4x4 width), blocks of
  different expansions, or bfloat16 stages other than G's last and D's first.
  """
  generator = networks.networks['G']
  g_modules, g_stages = _stages(generator, 'GeneratorStage', 'G')
  widths, cardinalities, blocks, expansions = _layout(
      g_modules, g_stages, functools.partial(_generator_stage_width, g_modules))
  layout = (widths, cardinalities, blocks)
  bf16_stages = _bfloat16_count(g_stages, True, 'G')
  if 'D' in networks.networks:
    d_modules, d_stages = _stages(networks.networks['D'], 'DiscriminatorStage', 'D')
    d_widths, d_cardinalities, d_blocks, d_expansions = _layout(
        d_modules, d_stages, functools.partial(_discriminator_stage_width, d_modules))
    expansions |= d_expansions
    if (d_widths[::-1], d_cardinalities[::-1], d_blocks[::-1]) != layout:
      raise UserError(f'D\'s stages (widths {d_widths}, cardinalities {d_cardinalities}, blocks '
                      f'{d_blocks}) are not G\'s reversed; facegan_jax\'s R3GAN builds D as G\'s '
                      'stages reversed.')
    if _bfloat16_count(d_stages, False, 'D') != bf16_stages:
      raise UserError('D and G compute different numbers of stages in bfloat16; facegan_jax\'s '
                      'R3GAN has one config.model.bf16_stages for both.')
  if len(expansions) > 1:
    raise UserError(f'the snapshot\'s blocks expand by {sorted(expansions)}; facegan_jax\'s '
                    'R3GAN has one config.model.expansion.')
  latent_dim = generator.attributes.get('z_dim')
  c_dim = generator.attributes.get('c_dim', 0)
  _check_embeddings(networks, g_modules, latent_dim, c_dim, widths[0])
  resolution = 4 * 2 ** (len(widths) - 1)
  if generator.attributes.get('img_resolution', resolution) != resolution:
    raise UserError(f'G says img_resolution={generator.attributes["img_resolution"]} but has '
                    f'{len(widths)} stages ({resolution}x{resolution}): the file is damaged.')
  return dict(
      name='r3gan', resolution=resolution,
      channels=_layer(g_modules, 'Model.AggregationLayer.Layer', 'out_channels'),
      latent_dim=latent_dim, expansion=expansions.pop() if expansions else 2, c_dim=c_dim,
      bf16_stages=bf16_stages,
      **{field: ','.join(map(str, values))
         for field, values in zip(r3gan.PER_STAGE_FIELDS, layout)})


def _check_embeddings(networks, g_modules, latent_dim, c_dim, basis_width):
  """UserError unless a conditional snapshot's label embeddings have the reference's widths,
  which facegan_jax's R3GAN builds: G's z's, D's G's 4x4 width."""
  expected = {'G': (g_modules, latent_dim)}
  if 'D' in networks.networks:
    expected['D'] = (dict(networks.networks['D'].modules()), basis_width)
  for name, (modules, width) in expected.items():
    embedding = modules.get('Model.EmbeddingLayer')
    found = embedding.attributes.get('out_features') if embedding is not None else None
    if (found is not None) != bool(c_dim) or (c_dim and found != width):
      raise UserError(f'{name}\'s label embedding has {found} features for c_dim={c_dim}; '
                      f'facegan_jax\'s R3GAN embeds labels in {width} (the reference\'s '
                      'default).')


def read_networks(config: ml_collections.ConfigDict, path: str) -> state_lib.InitialNetworks:
  """The G, G_ema (G's if the snapshot has none) and D (if present) of the R3GAN snapshot at
  `path` for `config`'s R3GAN: UserError, one line naming both values, if config.model builds
  another network than the file's (its per-stage layout compared as built)."""
  networks = nvidia_pickle.read(path)
  if networks.repo != nvidia_pickle.R3GAN:
    raise UserError(f'{path} holds StyleGAN2 networks ({networks.repo}), but config.model.name '
                    'is \'r3gan\'; use a StyleGAN2 config, or import it without --config.')
  fields = model_fields(networks)
  layout = dict(zip(r3gan.PER_STAGE_FIELDS, r3gan.stage_layout(config.model)))
  for field, value in fields.items():
    if field == 'bf16_stages':  # how the run computes, not what the weights are
      continue
    built = (','.join(map(str, layout[field])) if field in layout
             else config.model.get(field, 0))
    if built != value:
      raise UserError(f'config.model builds {field}={built!r}, but {path} holds a network with '
                      f'{value!r}; set --config.model.{field}={value!r}.')
  generator, discriminator = models.build_models(config.model)
  arrays = networks.state_dicts()
  g_params = r3gan.params_from_reference(arrays, generator, 'G/')
  ema_params = (r3gan.params_from_reference(arrays, generator, 'G_ema/')
                if 'G_ema' in networks.networks else g_params)
  d_vars = ({'params': r3gan.params_from_reference(arrays, discriminator, 'D/')}
            if 'D' in networks.networks else {})
  return state_lib.InitialNetworks({'params': g_params, 'batch_stats': {}}, ema_params, d_vars)
