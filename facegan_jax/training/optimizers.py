"""The optimisers and their learning-rate schedules, pure functions of the train step."""

import ml_collections
import optax

from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import check_at_least
from facegan_jax.training import r3gan_schedules


SCHEDULES = ('constant', 'linear')


def learning_rate_schedule(config: ml_collections.ConfigDict, base: float):
  """The learning rate of the step that follows t completed steps: `base` itself for
  'constant', or `base * max(0, 1 - t / optim.decay_steps)` for 'linear' (Mimicry's linear
  decay). Its own length, not train.num_steps, so that a run can be extended and still resume
  exactly. UserError for an unknown schedule or decay_steps < 1."""
  if config.optim.schedule not in SCHEDULES:
    raise UserError(f'config.optim.schedule={config.optim.schedule!r} is unknown; use one of '
                    f'{SCHEDULES}.')
  if config.optim.schedule == 'linear':
    check_at_least(config, 'optim.decay_steps', 1)
    return optax.linear_schedule(base, 0.0, config.optim.decay_steps)
  return base  # a number, not a function: no schedule state in the optimizer


def make_adam(config, base, updates_per_step, lazy_every=1):
  """Adam whose learning rate is a pure function of the train step (optax counts updates).

  A network whose regulariser takes its own step every `lazy_every` > 1 steps gets the learning
  rate and betas of StyleGAN2's lazy regularisation (ratio = k / (k + 1)), so that the moments
  see the same average horizon.
  """
  ratio = lazy_every / (lazy_every + 1) if lazy_every > 1 else 1.0
  schedule = learning_rate_schedule(config, base)
  if callable(schedule):
    if lazy_every > 1:  # its extra updates would shift the schedule off the train step
      raise UserError(f"config.optim.schedule={config.optim.schedule!r} cannot be combined with "
                      'lazy regularisation (loss.r1_every or loss.pl_every > 1); use '
                      "'constant' or regularise at every step.")
    per_step = schedule
    schedule = lambda count: ratio * per_step(count // updates_per_step)
  else:
    schedule = ratio * schedule
  return optax.adam(schedule, b1=config.optim.b1**ratio, b2=config.optim.b2**ratio)


def apply_step(optimizer, params, opt_state, grads):
  """(new params, new optimiser state) of one step of `optimizer` on `grads`."""
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def learning_rates(config: ml_collections.ConfigDict, step: int) -> dict[str, float]:
  """g_learning_rate and d_learning_rate of train step `step` (1-based, as logged); R3GAN's
  cosine at the images seen before the step."""
  if config.model.name == 'r3gan':
    rate = r3gan_schedules.from_config(config).learning_rate(
        (step - 1) * config.train.batch_size)
    return {'g_learning_rate': rate, 'd_learning_rate': rate}
  rates = {}
  for name in ('g_learning_rate', 'd_learning_rate'):
    schedule = learning_rate_schedule(config, config.optim[name])
    rates[name] = float(schedule(step - 1)) if callable(schedule) else schedule
  return rates
