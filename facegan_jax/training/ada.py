"""The probability multiplier p of the ADA augment pipe (training/augment_pipe.py): NVIDIA's
adaptive controller (stylegan2-ada-pytorch's training_loop.py), a fixed p, or R3GAN's cosine
schedule over the image count.

Pure functions of arrays that live in the train state: p (float32 scalar) and, for the adaptive
controller, the sum and the count of the signs of D's logits on real images since the last
update (float32 scalars; under a jit over the global batch their sums are global, as the
reference's statistics are gathered over all GPUs).
"""

import dataclasses
import math
from typing import NamedTuple, Optional

import jax.numpy as jnp

from facegan_jax.system.errors import UserError
from facegan_jax.training import augment_pipe

MODES = ('adaptive', 'fixed', 'cosine')


@dataclasses.dataclass(frozen=True)
class Schedule:
  """How p evolves. 'adaptive': from p, every `interval` steps by +-batch * interval /
  (ada_kimg * 1000) towards E[sign(D(real))] = target (NVIDIA's defaults); 'fixed': p always;
  'cosine': from p to final_p over total_images images (R3GAN's presets: 0 -> 0.55, 0.3, 0.5
  or 0.4 over 2e7 or 2e8 images), final_p after."""
  mode: str = 'adaptive'
  p: float = 0.0
  target: float = 0.6
  interval: int = 4
  ada_kimg: float = 500.0
  final_p: float = 0.0
  total_images: float = 0.0


def _number(text) -> Optional[float]:
  try:
    value = float(text)
  except ValueError:
    return None
  return value if math.isfinite(value) else None


def pipe_settings(augment_config) -> Optional[augment_pipe.AugmentSettings]:
  """The AugmentSettings of config.augment (its pipe preset changed by pipe_settings), or None
  when the pipe is off; UserError naming the bad field."""
  if not augment_config.pipe:
    if augment_config.pipe_settings:
      raise UserError(f'config.augment.pipe_settings={augment_config.pipe_settings!r} needs a '
                      "pipe; set config.augment.pipe, e.g. 'bgc', or pipe_settings=''.")
    return None
  if augment_config.pipe not in augment_pipe.PRESETS:
    raise UserError(f'config.augment.pipe={augment_config.pipe!r} is unknown; use one of '
                    f"{list(augment_pipe.PRESETS)}, or '' for none.")
  settings = augment_pipe.preset(augment_config.pipe)
  known = {field.name for field in dataclasses.fields(settings) if field.name != 'imgfilter_bands'}
  changes = {}
  for item in filter(None, (item.strip() for item in augment_config.pipe_settings.split(','))):
    name, _, text = (part.strip() for part in item.partition('='))
    value = _number(text)
    if name not in known or value is None or value < 0:
      raise UserError(f'config.augment.pipe_settings has {item!r}; use name=value with a '
                      f'number >= 0 and a name of {sorted(known)}.')
    changes[name] = value
  return dataclasses.replace(settings, **changes)


def schedule_of(augment_config) -> Schedule:
  """The Schedule of config.augment."""
  return Schedule(mode=augment_config.p_mode, p=augment_config.p,
                  target=augment_config.ada_target, interval=augment_config.ada_interval,
                  ada_kimg=augment_config.ada_kimg, final_p=augment_config.final_p,
                  total_images=augment_config.cosine_images)


def check_config(augment_config):
  """UserError (one line) for the first bad ADA field of config.augment."""
  if pipe_settings(augment_config) is None:
    return
  if augment_config.policy:
    raise UserError(f'config.augment.policy={augment_config.policy!r} and config.augment.pipe='
                    f"{augment_config.pipe!r} are both on; use one: set policy='' or pipe=''.")
  if augment_config.p_mode == 'cosine' and augment_config.cosine_images <= 0:
    raise UserError(f'config.augment.cosine_images={augment_config.cosine_images} with '
                    "p_mode='cosine'; use the schedule's length in images, > 0.")
  check_schedule(schedule_of(augment_config))


def check_schedule(schedule: Schedule):
  """UserError naming the first bad setting."""
  if schedule.mode not in MODES:
    raise UserError(f'ADA mode {schedule.mode!r} is unknown; use one of {list(MODES)}.')
  if schedule.p < 0:
    raise UserError(f'ADA p={schedule.p} is negative; use p >= 0.')
  if schedule.mode == 'adaptive' and (schedule.interval < 1 or schedule.ada_kimg <= 0):
    raise UserError(f'ADA interval={schedule.interval}, ada_kimg={schedule.ada_kimg}: use an '
                    'interval >= 1 step and ada_kimg > 0.')
  if schedule.mode == 'cosine' and schedule.total_images <= 0:
    raise UserError(f'ADA total_images={schedule.total_images}: the cosine schedule needs > 0.')


class AdaState(NamedTuple):
  """p and the adaptive controller's accumulators, float32 scalars."""
  p: jnp.ndarray
  sign_sum: jnp.ndarray
  count: jnp.ndarray


def initial_state(schedule: Schedule) -> AdaState:
  """p at step 0 and empty sums, each leaf its own buffer (the step donates the state)."""
  return AdaState(jnp.asarray(schedule.p, jnp.float32), jnp.zeros((), jnp.float32),
                  jnp.zeros((), jnp.float32))


def accumulate_signs(sign_sum, count, real_logits):
  """Adds sign(logit) (sign(0) = 0) of D's logits on real images, any shape, one per image."""
  signs = jnp.sign(real_logits.astype(jnp.float32))
  return sign_sum + signs.sum(), count + signs.size


def adjust_p(p, sign_sum, count, target, batch_size, interval, ada_kimg):
  """NVIDIA's ADA step: p + sign(r_t - target) * batch_size * interval / (ada_kimg * 1000),
  clamped at 0 below (not above 1), with r_t = sign_sum / count the mean sign of D's logits on
  the reals since the last update; float32, as the reference's buffer. p is unchanged when
  count = 0. batch_size is the global batch."""
  step = batch_size * interval / (ada_kimg * 1000)
  error = sign_sum / jnp.maximum(count, 1) - jnp.float32(target)
  adjusted = jnp.maximum(p + jnp.sign(error) * jnp.float32(step), 0)
  return jnp.where(count > 0, adjusted, p).astype(jnp.float32)


def cosine_p(images_seen, initial_p, final_p, total_images):
  """R3GAN's cosine_decay_with_warmup without warm-up: initial_p + (1 - d) (final_p - initial_p)
  with d = (1 + cos(pi n / T)) / 2 for n <= T, final_p after; float32, with 1 - d computed as
  sin(pi n / 2T)^2 (no cancellation early on, exactly 1 from n = T)."""
  fraction = jnp.minimum(jnp.asarray(images_seen, jnp.float32) / total_images, 1)
  rise = jnp.sin(math.pi / 2 * fraction) ** 2
  return (initial_p + rise * (final_p - initial_p)).astype(jnp.float32)


def update(schedule: Schedule, state: AdaState, steps_done, images_seen, batch_size) -> AdaState:
  """The state for the next augmentation, after `steps_done` training steps (images_seen images):
  the adaptive controller adjusts p when steps_done is a multiple of the interval and restarts
  its accumulators (the reference's batch_idx % ada_interval == 0); 'fixed' keeps p; 'cosine'
  sets it from images_seen."""
  if schedule.mode == 'fixed':
    return state
  if schedule.mode == 'cosine':
    return state._replace(p=cosine_p(images_seen, schedule.p, schedule.final_p,
                                     schedule.total_images))
  due = steps_done % schedule.interval == 0
  p = adjust_p(state.p, state.sign_sum, state.count, schedule.target, batch_size,
               schedule.interval, schedule.ada_kimg)
  zero = jnp.zeros((), jnp.float32)
  return AdaState(jnp.where(due, p, state.p), jnp.where(due, zero, state.sign_sum),
                  jnp.where(due, zero, state.count))
