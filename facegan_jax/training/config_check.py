"""One check of a whole training config, before the run touches its workdir.

`check(config)` raises UserError with one line, 'config.FIELD=VALUE ...; use ...', for the first
field of `FIELDS` whose type or range is wrong, for a field that `FIELDS` does not know (with the
nearest known name), and for names that the modules owning them do not know (model family and
its options, losses, DiffAugment operations, compute dtype, data source and folder).
"""

import dataclasses
import difflib
import math
from typing import Any, Optional

import ml_collections

from facegan_jax import models
from facegan_jax.data import image_sources
from facegan_jax.system.errors import UserError
from facegan_jax.training import ada
from facegan_jax.training import augment
from facegan_jax.training import losses

SEED_LIMIT = 2**32  # jax.random.key keeps the low 32 bits of a seed: larger ones would repeat


@dataclasses.dataclass(frozen=True)
class Spec:
  """A field's type and range: `kind` is int, float, str or bool; floats must be finite."""
  kind: type
  low: Optional[float] = None
  high: Optional[float] = None
  low_open: bool = False  # low itself is not allowed
  high_open: bool = False  # high itself is not allowed
  choices: tuple = ()  # if given, the only values allowed

  def problem(self, value) -> Optional[str]:
    """None if `value` fits, else 'is ...; use ...' (what is wrong and what fits)."""
    wanted = {int: 'an integer', float: 'a finite number', str: 'a string',
              bool: 'True or False'}[self.kind]
    fits_type = (isinstance(value, self.kind) and not (self.kind is int and isinstance(value, bool))
                 or self.kind is float and isinstance(value, int) and not isinstance(value, bool))
    if not fits_type:
      return f'has type {type(value).__name__}; use {wanted}'
    if self.kind is float and not math.isfinite(value):
      return f'is not finite; use {wanted}{self._range()}'
    if ((self.low is not None and (value < self.low or self.low_open and value == self.low))
        or (self.high is not None and (value > self.high or self.high_open and value == self.high))):
      return f'is out of range; use {wanted}{self._range()}'
    if self.choices and value not in self.choices:
      return f'is not supported; use one of {self.choices}'
    return None

  def _range(self) -> str:
    low, high = (f'{bound:g}' if isinstance(bound, float) else bound
                 for bound in (self.low, self.high))
    if self.high is None:
      return f' {">" if self.low_open else ">="} {low}' if self.low is not None else ''
    return f' in {"(" if self.low_open else "["}{low}, {high}{")" if self.high_open else "]"}'



def _count(low=1, high=None):
  return Spec(int, low, high)


def _positive():
  return Spec(float, 0.0, low_open=True)


_TEXT, _FLAG, _NONNEGATIVE = Spec(str), Spec(bool), Spec(float, 0.0)

# Every field of configs/default.py (tests/test_config_check.py keeps them in step).
FIELDS = {
    'seed': Spec(int, 0, SEED_LIMIT, high_open=True),
    'deterministic': _FLAG, 'compilation_cache': _TEXT,
    'data.source': _TEXT, 'data.split': _TEXT, 'data.path': _TEXT, 'data.data_dir': _TEXT,
    'data.cache_dir': _TEXT, 'data.crop': _count(0), 'data.max_examples': _count(0),
    'data.threads': _count(0), 'data.prefetch': _count(0), 'data.random_flip': _FLAG,
    'data.labels': _TEXT, 'data.attributes': _TEXT, 'model.c_dim': _count(0),
    'model.name': _TEXT, 'model.resolution': _count(), 'model.channels': Spec(int, choices=(1, 3)),
    'model.latent_dim': _count(), 'model.g_width': _count(), 'model.d_width': _count(),
    'model.g_norm': _TEXT, 'model.d_norm': _TEXT, 'model.hidden': _count(0),
    'model.w_dim': _count(), 'model.channel_base': _count(), 'model.channel_max': _count(),
    'model.mapping_layers': _count(), 'model.mapping_lr_multiplier': _positive(),
    'model.w_avg_beta': Spec(float, 0.0, 1.0), 'model.style_mixing_prob': Spec(float, 0.0, 1.0),
    'model.mbstd_group_size': _count(0), 'model.mbstd_num_channels': _count(),
    'model.conv_clamp': _NONNEGATIVE, 'model.modconv_lowering': _TEXT,
    'model.group_width': _count(), 'model.blocks_per_stage': _count(), 'model.expansion': _count(),
    'model.bf16_stages': _count(0), 'model.stage_widths': _TEXT,
    'model.stage_cardinalities': _TEXT, 'model.stage_blocks': _TEXT,
    'loss.discriminator': _TEXT, 'loss.generator': _TEXT, 'loss.r1_gamma': _NONNEGATIVE,
    'loss.r1_every': _count(), 'loss.pl_weight': _NONNEGATIVE, 'loss.pl_every': _count(),
    'loss.pl_batch_shrink': _count(), 'loss.pl_decay': Spec(float, 0.0, 1.0),
    'augment.policy': _TEXT, 'augment.strength': _NONNEGATIVE,
    'augment.pipe': _TEXT, 'augment.pipe_settings': _TEXT,
    'augment.p_mode': Spec(str, choices=('adaptive', 'fixed', 'cosine')),
    'augment.p': _NONNEGATIVE, 'augment.ada_target': Spec(float, -1.0, 1.0),
    'augment.ada_interval': _count(), 'augment.ada_kimg': _positive(),
    'augment.final_p': _NONNEGATIVE, 'augment.cosine_images': _NONNEGATIVE,
    'init.from_pkl': _TEXT, 'init.from_pkl_sha256': _TEXT,
    'ema.halflife_images': _NONNEGATIVE, 'ema.rampup': _NONNEGATIVE,
    'optim.g_learning_rate': _positive(), 'optim.d_learning_rate': _positive(),
    'optim.b1': Spec(float, 0.0, 1.0, high_open=True),
    'optim.b2': Spec(float, 0.0, 1.0, high_open=True),
    'optim.schedule': _TEXT, 'optim.decay_steps': _count(0),
    'r3gan.schedule_images': _positive(), 'r3gan.final_learning_rate': _positive(),
    'r3gan.final_b2': Spec(float, 0.0, 1.0, high_open=True), 'r3gan.final_gamma': _NONNEGATIVE,
    'train.batch_size': _count(), 'train.num_steps': _count(), 'train.d_steps': _count(),
    'train.fresh_generator_pass': _FLAG,
    'train.generator_first': _FLAG,
    'train.compute_dtype': _TEXT, 'train.log_every': _count(),
    'samples.every': _count(), 'samples.count': _count(),
    'checkpoint.every': _count(), 'checkpoint.keep': _count(),
    'eval.every': _count(0), 'eval.num_samples': _count(2), 'eval.batch_size': _count(),
    'eval.inception_weights': _TEXT, 'eval.inception_width_multiplier': _positive(),
    'eval.stats_dir': _TEXT, 'eval.kid_subsets': _count(), 'eval.kid_subset_size': _count(2),
    'eval.protocol': _TEXT, 'eval.precision_recall_k': _count(),
    'eval.density_coverage_k': _count(),
    'eval.ppl': _FLAG, 'eval.ppl_samples': _count(), 'eval.ppl_space': Spec(str, choices=('w', 'z')),
    'eval.ppl_sampling': Spec(str, choices=('end', 'full')), 'eval.ppl_epsilon': _positive(),
    'eval.ppl_crop': _FLAG, 'eval.lpips_weights': _TEXT,
}


# Fields that R3GAN's step (model.name='r3gan') does not read, at the one value that describes
# it: one D phase per G phase, D's phase first, the RpGAN loss (logistic in s_real - s_fake), R1
# and R2 at every step, no DiffAugment (NVIDIA's augment pipe instead), its own schedules of the
# learning rate and EMA.
R3GAN_RECIPE = {'train.d_steps': 1, 'train.fresh_generator_pass': False,
                'train.generator_first': False, 'loss.discriminator': 'logistic',
                'loss.generator': 'non_saturating', 'loss.r1_every': 1, 'augment.policy': '',
                'ema.rampup': 0.0, 'optim.schedule': 'constant'}


def flatten(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a.b': 1}."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def nearest_field(name: str, known) -> str:
  """' (did you mean config.X?)' for the closest of `known` to `name`, or ''."""
  close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
  return f' (did you mean config.{close[0]}?)' if close else ''


def check_fields(config: ml_collections.ConfigDict):
  """UserError for the first unknown, missing, mistyped or out-of-range field."""
  values = flatten(config.to_dict())
  for name in values:
    if name not in FIELDS:
      raise UserError(f'config.{name} is not a config field{nearest_field(name, FIELDS)}; use '
                      'the fields of configs/default.py.')
  for name, spec in FIELDS.items():
    if name not in values:
      raise UserError(f'config.{name} is missing; use a config that starts from '
                      'configs/default.py.')
    problem = spec.problem(values[name])
    if problem:
      raise UserError(f'config.{name}={values[name]!r} {problem}.')


def check(config: ml_collections.ConfigDict, data: bool = True):
  """Raises UserError (one line) for the first problem of `config` (of config.data too if
  `data`); touches no file."""
  check_fields(config)
  models.check_model_config(config.model)
  models.compute_dtype(config.train.compute_dtype)
  losses.get_discriminator_loss(config.loss.discriminator)
  losses.get_generator_loss(config.loss.generator)
  augment.parse_policy(config.augment.policy)
  ada.check_config(config.augment)
  if data:
    image_sources.check_data_config(config.data)
  _check_minibatch_groups(config)
  _check_r3gan_recipe(config)


def _check_minibatch_groups(config: ml_collections.ConfigDict):
  """StyleGAN2's D splits every batch it sees (train.batch_size images) into groups of
  min(mbstd_group_size, batch) for its minibatch standard deviation: the batch must divide."""
  model, batch = config.model, config.train.batch_size
  if model.name != 'stylegan2' or not model.mbstd_num_channels:
    return
  group = min(model.mbstd_group_size, batch)
  if batch % group:
    raise UserError(f'config.train.batch_size={batch} does not split into the discriminator\'s '
                    f'minibatch-standard-deviation groups of config.model.mbstd_group_size='
                    f'{model.mbstd_group_size}; use a multiple of {group}.')


def _check_r3gan_recipe(config: ml_collections.ConfigDict):
  """An R3GAN config sets none of what its step would ignore (R3GAN_RECIPE), one learning rate
  for both networks, and with the augment pipe on a scheduled p: its step keeps no statistics of
  D's logits for the adaptive controller."""
  if config.model.name != 'r3gan':
    return
  values = flatten(config.to_dict())
  for field, value in R3GAN_RECIPE.items():
    if values[field] != value:
      raise UserError(f'config.{field}={values[field]!r} does not apply to R3GAN, whose step has '
                      f'its own loss, phases and schedules (docs/training.md); use {value!r}.')
  if config.optim.d_learning_rate != config.optim.g_learning_rate:
    raise UserError(f'config.optim.d_learning_rate={config.optim.d_learning_rate} differs from '
                    f'config.optim.g_learning_rate={config.optim.g_learning_rate}: R3GAN '
                    'schedules one learning rate for both networks; set them equal.')
  if config.augment.pipe and config.augment.p_mode == 'adaptive':
    raise UserError("config.augment.p_mode='adaptive' does not apply to R3GAN, whose step "
                    "schedules the augment pipe's p; use 'cosine' (R3GAN's presets) or 'fixed'.")
