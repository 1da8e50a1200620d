"""The train state, the jitted data-parallel train step, and the training loop.

Step t draws all its randomness from `fold_in(state.key, t)`; the state's key and the initial
parameters come from the run's key streams (`generation`), so a run is a pure function of the
config, the data and the device count.
"""

import contextlib
import functools
import json
import os
import time
from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from facegan_jax import augment
from facegan_jax import checkpointing
from facegan_jax import config_check
from facegan_jax import divergence
from facegan_jax import ema
from facegan_jax import fid
from facegan_jax import generation
from facegan_jax import image_sources
from facegan_jax import images as images_lib
from facegan_jax import input_pipeline
from facegan_jax import losses
from facegan_jax import metric_writer
from facegan_jax import models
from facegan_jax import parallel
from facegan_jax import preemption
from facegan_jax import storage
from facegan_jax import workdir_lock
from facegan_jax.errors import Preempted
from facegan_jax.errors import UserError
from facegan_jax.errors import check_at_least

SCHEDULES = ('constant', 'linear')

CONFIG_FILE = 'config.json'  # in the workdir: the config of the latest run there, every field
# How many steps the loop may dispatch before the oldest of them has finished. XLA:CPU runs at
# most 32 queued multi-device programs per device and blocks its (device-count-sized) thread
# pool on the 33rd, which can starve a running step's all-reduce of threads: with many
# simulated CPU devices a long stretch without a host sync deadlocked (XLA aborts after 60 s).
# A few steps ahead keep every backend busy.
MAX_STEPS_AHEAD = 4


@flax.struct.dataclass
class TrainState:
  """Everything that a run needs to continue bit-exactly (the data position is `step`)."""
  step: jax.Array  # int32 scalar: number of completed train steps
  key: jax.Array  # typed PRNG key: base of every step's randomness
  g_params: Any
  g_batch_stats: Any
  d_params: Any
  d_batch_stats: Any
  g_opt_state: Any
  d_opt_state: Any
  g_ema_params: Any  # moving average of g_params; {} when config.ema is off
  pl_mean: jax.Array  # float32 scalar: decaying mean of the path lengths (StyleGAN2); 0 if off


def _static(**kwargs):
  return flax.struct.field(pytree_node=False, **kwargs)


@flax.struct.dataclass
class Trainer:
  """The static parts of training: models, optimisers, losses, regularisers, augmentation."""
  generator: Any = _static()
  discriminator: Any = _static()
  g_optimizer: Any = _static()
  d_optimizer: Any = _static()
  discriminator_loss: Callable = _static()
  generator_loss: Callable = _static()
  latent_dim: int = _static()
  random_flip: bool = _static()
  r1_gamma: float = _static(default=0.0)  # D's loss adds r1_gamma / 2 * R1 ...
  r1_every: int = _static(default=1)  # ... on every r1_every-th step, scaled by r1_every
  augment_policy: tuple[str, ...] = _static(default=())
  augment_strength: float = _static(default=0.0)
  ema_decay: float = _static(default=0.0)  # 0: no EMA generator
  sampling_params_field: str = _static(default='g_params')  # the weights that sample
  # True (Mimicry's SNGAN trainer): G's update draws its own latents and runs G and D afresh in
  # training mode, keeping D's spectral-norm vectors (and BatchNorm statistics) from that pass.
  # False (the DCGAN reference): it reuses the last D update's fakes and discards D's statistics.
  fresh_generator_pass: bool = _static(default=False)
  # True (NVIDIA's StyleGAN2 loop): G's update (and its path-length step) comes first, on a
  # pass of its own, and the D updates then see fakes of the updated G; G's running statistics
  # (the w average) come from the D updates' passes only, as the reference's update_emas.
  generator_first: bool = _static(default=False)
  ema_rampup: float = _static(default=0.0)  # EMA half-life <= ema_rampup * images seen; 0: off
  pl_weight: float = _static(default=0.0)  # G's path-length phase: pl_weight * penalty ...
  pl_every: int = _static(default=1)  # ... on every pl_every-th step, scaled by pl_every,
  pl_batch_shrink: int = _static(default=2)  # ... on batch / pl_batch_shrink latents
  pl_decay: float = _static(default=0.01)  # of the path lengths' running mean


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


def learning_rates(config: ml_collections.ConfigDict, step: int) -> dict[str, float]:
  """g_learning_rate and d_learning_rate of train step `step` (1-based, as logged)."""
  rates = {}
  for name in ('g_learning_rate', 'd_learning_rate'):
    schedule = learning_rate_schedule(config, config.optim[name])
    rates[name] = float(schedule(step - 1)) if callable(schedule) else schedule
  return rates


def make_trainer(config: ml_collections.ConfigDict) -> Trainer:
  """Builds models, optimisers, losses and regularisers from a config that passed
  `config_check.check`."""
  generator, discriminator = models.build_models(config.model, config.train.compute_dtype)
  loss, halflife = config.loss, config.ema.halflife_images
  if loss.pl_weight and not hasattr(generator, 'styles'):
    raise UserError(f'config.loss.pl_weight={loss.pl_weight} needs a style-based generator '
                    "(config.model.name='stylegan2'); set it to 0 for this model.")
  return Trainer(generator=generator, discriminator=discriminator,
                 g_optimizer=make_adam(config, config.optim.g_learning_rate, 1,
                                       loss.pl_every if loss.pl_weight else 1),
                 d_optimizer=make_adam(config, config.optim.d_learning_rate,
                                       config.train.d_steps,
                                       loss.r1_every if loss.r1_gamma else 1),
                 discriminator_loss=losses.get_discriminator_loss(config.loss.discriminator),
                 generator_loss=losses.get_generator_loss(config.loss.generator),
                 latent_dim=config.model.latent_dim,
                 random_flip=config.data.random_flip,
                 r1_gamma=config.loss.r1_gamma, r1_every=config.loss.r1_every,
                 augment_policy=augment.parse_policy(config.augment.policy),
                 augment_strength=config.augment.strength,
                 ema_decay=(ema.decay_per_step(config.train.batch_size, halflife)
                            if generation.uses_ema(config.ema) else 0.0),
                 sampling_params_field=generation.sampling_params_field(config.ema),
                 fresh_generator_pass=config.train.fresh_generator_pass,
                 generator_first=config.train.generator_first,
                 ema_rampup=config.ema.rampup, pl_weight=loss.pl_weight,
                 pl_every=loss.pl_every, pl_batch_shrink=loss.pl_batch_shrink,
                 pl_decay=loss.pl_decay)


def _variables(params, batch_stats):
  return {'params': params, 'batch_stats': batch_stats}


def _apply_train(module, params, batch_stats, inputs, noise_key=None):
  """Runs `module` in training mode, drawing from `noise_key` if it samples (StyleGAN2's noise
  and style mixing); returns (outputs, updated batch statistics)."""
  rngs = {} if noise_key is None else {'noise': noise_key}
  outputs, updates = module.apply(_variables(params, batch_stats), inputs, train=True,
                                  rngs=rngs, mutable=['batch_stats'])
  return outputs, updates.get('batch_stats', batch_stats)


def create_train_state(trainer: Trainer, key: jax.Array, image_shape) -> TrainState:
  """Initial state from the run's root key; `image_shape` is (H, W, C)."""
  g_key, d_key = jax.random.split(jax.random.fold_in(key, generation.INIT_STREAM))
  z = jnp.zeros((1, trainer.latent_dim), jnp.float32)
  g_vars = trainer.generator.init(g_key, z, train=False)
  d_vars = trainer.discriminator.init(d_key, jnp.zeros((1,) + tuple(image_shape)), train=False)
  g_params, d_params = g_vars['params'], d_vars['params']
  return TrainState(
      step=jnp.zeros((), jnp.int32), key=jax.random.fold_in(key, generation.TRAIN_STREAM),
      g_params=g_params, g_batch_stats=g_vars.get('batch_stats', {}),
      d_params=d_params, d_batch_stats=d_vars.get('batch_stats', {}),
      g_opt_state=trainer.g_optimizer.init(g_params),
      d_opt_state=trainer.d_optimizer.init(d_params),
      g_ema_params=g_params if trainer.ema_decay else {}, pl_mean=jnp.zeros((), jnp.float32))


def _augment(trainer, key, images):
  return augment.augment(key, images, trainer.augment_policy, trainer.augment_strength)


def _adam_step(optimizer, params, opt_state, grads):
  """(new params, new optimiser state) of one optimiser step."""
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def _r1_loss(trainer, d_params, stats, real, augment_key):
  """(r1_every * r1_gamma / 2 * R1, R1) at the real images [B, H, W, C], D seeing them
  augmented with `augment_key`: the gradient is taken with respect to the images before
  augmentation, as NVIDIA's StyleGAN2-ADA and DiffAugment's StyleGAN2 do."""
  logits_fn = lambda x: _apply_train(trainer.discriminator, d_params, stats,
                                     _augment(trainer, augment_key, x))[0]
  r1 = losses.r1_penalty(logits_fn, real)
  return 0.5 * trainer.r1_gamma * trainer.r1_every * r1, r1


def _lazy_r1_update(trainer, state, real, augment_key):
  """D's lazy R1 phase (r1_every > 1): its own Adam step on the weighted R1; (state, R1)."""
  (_, r1), grads = jax.value_and_grad(
      lambda p: _r1_loss(trainer, p, state.d_batch_stats, real, augment_key),
      has_aux=True)(state.d_params)
  d_params, d_opt_state = _adam_step(trainer.d_optimizer, state.d_params, state.d_opt_state,
                                     grads)
  return state.replace(d_params=d_params, d_opt_state=d_opt_state), r1


class LazyPhases(NamedTuple):
  """Which lazy regularisers take a step of their own in a train step. Chosen on the host from
  the step number (`lazy_phases`), so that each combination compiles into a step of its own
  without a conditional: XLA:CPU runs convolutions inside a lax.cond branch 20-50x slower
  (jax-ml/jax#12868; benchmarks/README.md)."""
  r1: bool = False
  path_length: bool = False


def lazy_phases(trainer: Trainer, step: int) -> LazyPhases:
  """The lazy phases of the train step that starts from state.step == `step`: R1 on every
  r1_every-th (when r1_every > 1; else R1 is part of every D update), the path length on every
  pl_every-th, step 0 included, as NVIDIA's training loop."""
  return LazyPhases(r1=bool(trainer.r1_gamma) and trainer.r1_every > 1
                    and step % trainer.r1_every == 0,
                    path_length=bool(trainer.pl_weight) and step % trainer.pl_every == 0)


def _discriminator_update(trainer, state, real, fakes, key, lazy_r1):
  """One Adam step of D on its loss (+ R1 in the same step if r1_every is 1), then, if
  `lazy_r1`, R1's step of its own; returns (state, metrics of this update).

  real, fakes: [B, H, W, C] in [-1, 1]; `key` draws their augmentations.
  """
  real_key, fake_key = jax.random.split(key)
  augmented_real = _augment(trainer, real_key, real)
  fakes = _augment(trainer, fake_key, fakes)

  def loss_fn(d_params):
    real_logits, stats = _apply_train(trainer.discriminator, d_params, state.d_batch_stats,
                                      augmented_real)
    fake_logits, stats = _apply_train(trainer.discriminator, d_params, stats, fakes)
    loss = trainer.discriminator_loss(real_logits, fake_logits)
    metrics = {'d_loss': loss, 'd_real': jax.nn.sigmoid(real_logits).mean(),
               'd_fake': jax.nn.sigmoid(fake_logits).mean()}
    if trainer.r1_gamma and trainer.r1_every == 1:
      r1_loss, metrics['r1'] = _r1_loss(trainer, d_params, stats, real, real_key)
      loss = loss + r1_loss
    return loss, (stats, metrics)

  (_, (stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
  d_params, d_opt_state = _adam_step(trainer.d_optimizer, state.d_params, state.d_opt_state,
                                     grads)
  state = state.replace(d_params=d_params, d_batch_stats=stats, d_opt_state=d_opt_state)
  if lazy_r1:
    state, metrics['r1'] = _lazy_r1_update(trainer, state, real, real_key)
  elif trainer.r1_gamma and trainer.r1_every > 1:
    metrics['r1'] = jnp.zeros((), jnp.float32)
  return state, dict(metrics, d_grad_norm=optax.tree.norm(grads))


def _path_length_update(trainer, state, batch_size, key):
  """G's lazy path-length phase (StyleGAN2): one Adam step on pl_every * pl_weight * the mean
  path-length penalty of batch_size / pl_batch_shrink new latents, with random noise and style
  mixing; returns (state with the new pl_mean, mean path length)."""
  latent_key, noise_key, direction_key = jax.random.split(key, 3)
  z = jax.random.normal(latent_key, (batch_size // trainer.pl_batch_shrink, trainer.latent_dim))

  def loss_fn(g_params):
    variables = _variables(g_params, state.g_batch_stats)
    apply = functools.partial(trainer.generator.apply, variables, rngs={'noise': noise_key})
    ws = apply(z, method='styles')
    synthesize = lambda ws: apply(ws, 'random', method='synthesize')
    direction = losses.path_length_noise(direction_key, jax.eval_shape(synthesize, ws).shape)
    lengths = losses.path_lengths(synthesize, ws, direction)
    penalty, pl_mean = losses.path_length_penalty(lengths, state.pl_mean, trainer.pl_decay)
    return trainer.pl_every * trainer.pl_weight * penalty.mean(), (pl_mean, lengths.mean())

  (_, (pl_mean, length)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
  g_params, g_opt_state = _adam_step(trainer.g_optimizer, state.g_params, state.g_opt_state,
                                     grads)
  return state.replace(g_params=g_params, g_opt_state=g_opt_state, pl_mean=pl_mean), length


def train_step(trainer: Trainer, state: TrainState, batch: jax.Array, phases: LazyPhases):
  """`d_steps` discriminator updates (and the lazy R1 step), then one generator update (and the
  lazy path-length step), or the other way round if trainer.generator_first; then the EMA of G.

  Args:
    trainer: the static models, optimisers, losses and regularisers.
    state: the current TrainState.
    batch: [d_steps, B, H, W, C] uint8 real images, one slice per discriminator update.
    phases: `lazy_phases(trainer, state.step)`, static.

  Returns:
    (new state, metrics): d_loss, g_loss, d_real = mean D(x), d_fake = mean D(G(z)) (the last
    discriminator update's, before it), d_grad_norm and g_grad_norm (global L2 norms of the last
    discriminator update's and of the generator update's gradients), r1 when R1 is on (0 on
    steps without it when lazy) and path_length likewise (StyleGAN2's regulariser), and
    params_finite (bool: every parameter of the new state is finite; see `divergence`). The
    generator's forward pass of the last discriminator update is reused, through its VJP, for
    the generator update, as in the DCGAN reference, unless trainer.fresh_generator_pass or
    trainer.generator_first.
  """
  step_key = jax.random.fold_in(state.key, state.step)
  flip_key, latent_key, augment_key = jax.random.split(step_key, 3)
  # Drawn from a stream of its own, so that the three above stay those of earlier versions.
  noise_key, pl_key = jax.random.split(jax.random.fold_in(step_key, 1))
  real = images_lib.to_model_range(batch)
  if trainer.random_flip:
    real = augment.random_flip(flip_key, real)
  d_steps, batch_size = batch.shape[:2]
  latents = jax.random.normal(latent_key, (d_steps, batch_size, trainer.latent_dim))
  augment_keys = jax.random.split(augment_key, d_steps + 1)
  noise_keys = jax.random.split(noise_key, d_steps)

  def generate(g_params, g_stats, z, key):
    return _apply_train(trainer.generator, g_params, g_stats, z, key)

  fresh = trainer.fresh_generator_pass or trainer.generator_first
  g_latents = (jax.random.normal(jax.random.fold_in(latent_key, 1), latents.shape[1:]) if fresh
               else latents[-1])
  g_noise_key = jax.random.fold_in(noise_key, d_steps) if fresh else noise_keys[-1]

  def generator_pass(state):
    """(fakes, their pullback to G's params, G's updated statistics) of the G update's pass."""
    return jax.vjp(lambda p: generate(p, state.g_batch_stats, g_latents, g_noise_key),
                   state.g_params, has_aux=True)

  def generator_phase(state, fakes, pullback, g_stats):
    """G's update from its pass (D frozen), then its lazy path-length step."""
    def g_loss_fn(fakes):
      fakes = _augment(trainer, augment_keys[-1], fakes)
      logits, d_stats = _apply_train(trainer.discriminator, state.d_params,
                                     state.d_batch_stats, fakes)
      return trainer.generator_loss(logits), d_stats

    (g_loss, d_stats), grad_fakes = jax.value_and_grad(g_loss_fn, has_aux=True)(fakes)
    if fresh:
      state = state.replace(d_batch_stats=d_stats)
    (g_grads,) = pullback(grad_fakes)
    g_params, g_opt_state = _adam_step(trainer.g_optimizer, state.g_params, state.g_opt_state,
                                       g_grads)
    state = state.replace(g_params=g_params, g_batch_stats=g_stats, g_opt_state=g_opt_state)
    metrics = {'g_loss': g_loss, 'g_grad_norm': optax.tree.norm(g_grads)}
    if phases.path_length:
      state, metrics['path_length'] = _path_length_update(trainer, state, batch_size, pl_key)
    elif trainer.pl_weight:
      metrics['path_length'] = jnp.zeros((), jnp.float32)
    return state, metrics

  if trainer.generator_first:
    fakes, pullback, _ = generator_pass(state)  # G's statistics: from the D phase's passes
    state, g_metrics = generator_phase(state, fakes, pullback, state.g_batch_stats)
  for i in range(d_steps if fresh else d_steps - 1):
    fakes, g_stats = generate(state.g_params, state.g_batch_stats, latents[i], noise_keys[i])
    state, metrics = _discriminator_update(trainer, state.replace(g_batch_stats=g_stats),
                                           real[i], fakes, augment_keys[i], phases.r1)
  if not trainer.generator_first:
    fakes, pullback, g_stats = generator_pass(state)
    if not fresh:
      state, metrics = _discriminator_update(trainer, state, real[-1],
                                             jax.lax.stop_gradient(fakes), augment_keys[-2],
                                             phases.r1)
    state, g_metrics = generator_phase(state, fakes, pullback, g_stats)
  metrics = dict(metrics, **g_metrics)
  if trainer.ema_decay:
    decay = (ema.ramped_decay(trainer.ema_decay, batch_size, trainer.ema_rampup,
                              state.step * batch_size) if trainer.ema_rampup
             else trainer.ema_decay)
    state = state.replace(g_ema_params=ema.update(state.g_ema_params, state.g_params, decay))
  state = state.replace(step=state.step + 1)
  params_finite = divergence.all_finite(state.g_params, state.d_params, state.g_ema_params)
  return state, dict(metrics, **{divergence.PARAMS_FINITE: params_finite})


def sampling_variables(trainer: Trainer, state: TrainState):
  """The generator variables that sample and evaluate (`generation.generate`'s)."""
  return _variables(getattr(state, trainer.sampling_params_field), state.g_batch_stats)


def generate_samples(trainer: Trainer, state: TrainState, latents):
  """Images [N, H, W, C] in [-1, 1] from latents [N, latent_dim], as `generation` samples."""
  return generation.generate(trainer.generator, sampling_variables(trainer, state), latents)


def compile_functions(trainer: Trainer, mesh, image_shape):
  """jit-compiled (init, step, sample) with the state replicated and the batch sharded; step
  takes (state, batch, `lazy_phases(trainer, state.step)`) and compiles once per phases."""
  replicated = parallel.replicated(mesh)
  init = jax.jit(functools.partial(create_train_state, trainer, image_shape=image_shape),
                 out_shardings=replicated)
  step = jax.jit(functools.partial(train_step, trainer), static_argnums=2,
                 in_shardings=(replicated, parallel.batch_sharding(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=0)
  sample = jax.jit(functools.partial(generate_samples, trainer), out_shardings=replicated)
  return init, step, sample


def due(step: int, every: int, last_step: int) -> bool:
  """Whether an action of every `every` steps (and of the last step) runs after step `step`."""
  return step % every == 0 or step == last_step


def _format_duration(seconds: float) -> str:
  seconds = int(round(seconds))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class _Progress:
  """Throughput, progress and ETA between two logging points."""

  def __init__(self, start_step, num_steps, batch_size):
    self.num_steps, self.batch_size = num_steps, batch_size
    self.last_step, self.last_time = start_step, time.perf_counter()

  def measure(self, step):
    """(images/s since the last call, 'N img/s, P% done, ETA H:MM:SS')."""
    now = time.perf_counter()
    seconds_per_step = (now - self.last_time) / max(step - self.last_step, 1)
    self.last_step, self.last_time = step, now
    eta = _format_duration(seconds_per_step * (self.num_steps - step))
    images_per_second = self.batch_size / seconds_per_step
    return images_per_second, (f'{images_per_second:.1f} img/s, '
                               f'{100.0 * step / self.num_steps:.1f}% done, ETA {eta}')


def _mean_metrics(history):
  """Averages host per-step metric dicts into Python floats (the guard's flags left out)."""
  names = [name for name in history[0] if name not in divergence.FLAGS]
  return {name: float(np.mean([m[name] for m in history])) for name in names}


def _write_samples(workdir, step, samples):
  """Writes the PNG grid of `samples` [N, H, W, C] in [-1, 1]; returns it, uint8."""
  path = os.path.join(workdir, 'samples', f'step_{step:07d}.png')
  grid = images_lib.make_grid(images_lib.to_uint8(samples))
  images_lib.save_png(path, grid)
  logging.info('Wrote %s', path)
  return grid


def write_config(workdir: str, config: ml_collections.ConfigDict):
  """Writes every field of `config` to workdir/config.json (the run's config, for people; the
  checkpoints hold their own copy)."""
  storage.write_text(os.path.join(workdir, CONFIG_FILE), json.dumps(config.to_dict(), indent=1))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains `config` in `workdir`, resuming from its newest checkpoint; returns the final state.

  Writes checkpoints/ (every config.checkpoint.every steps and at the end), samples/*.png,
  metrics.jsonl and TensorBoard events (losses, D outputs, gradient norms, learning rates,
  images/s, sample grids, and FID/KID/precision/recall/density/coverage every
  config.eval.every steps if not 0). Raises
  UserError, before changing anything in `workdir`, for a bad config, missing Inception
  weights, a gs:// workdir whose bucket cannot be used (`storage.check_reachable`), a config
  that cannot continue the run in `workdir`, or a workdir in use by another run; Diverged at
  the first step with a non-finite loss, gradient or parameter, having written nothing of it
  (`divergence`); Preempted after SIGTERM or SIGINT, having saved the step it was computing
  (`preemption`).
  """
  config_check.check(config)
  trainer = make_trainer(config)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.train.batch_size, mesh.devices.size)
  is_chief = jax.process_index() == 0
  storage.check_reachable(workdir, '--workdir')
  # Loads the Inception weights and the images before anything is written: a missing or
  # unreadable input is a UserError that leaves the workdir as it was.
  extractor = fid.make_extractor(config.eval, mesh) if config.eval.every else None
  images = image_sources.load_images(config)
  with contextlib.ExitStack() as stack:
    if is_chief:
      stack.enter_context(workdir_lock.hold(workdir))
    manager = stack.enter_context(checkpointing.training_manager(workdir,
                                                                 config.checkpoint.keep))
    init, step_fn, sample_fn = compile_functions(trainer, mesh, models.image_shape(config.model))
    state = checkpointing.resume(manager, workdir, config, init(jax.random.key(config.seed)))
    if is_chief:
      storage.makedirs(os.path.join(workdir, 'samples'))
      write_config(workdir, config)
    latents = generation.latents(generation.stream_key(config.seed, generation.SAMPLE_STREAM),
                                 config.samples.count, config.model.latent_dim)
    start_step = int(state.step)
    evaluator = (fid.make_evaluator(config, functools.partial(generation.generate,
                                                              trainer.generator),
                                    extractor, images) if extractor else None)
    writer = stack.enter_context(metric_writer.MetricWriter(workdir, is_chief, start_step))
    batches = stack.enter_context(contextlib.closing(input_pipeline.global_batches(
        images, mesh, seed=config.seed, start_step=start_step,
        batch_size=config.train.batch_size, d_steps=config.train.d_steps,
        prefetch_size=config.data.prefetch)))
    logging.info('Training %s from step %d to %d on %d device(s), %d images, global batch %d.',
                 config.model.name, start_step, config.train.num_steps, mesh.devices.size,
                 len(images), config.train.batch_size)

    progress = _Progress(start_step, config.train.num_steps, config.train.batch_size)
    saved_step = start_step or None  # the newest checkpoint, None if there is none
    unchecked, history = [], []  # device metrics not yet checked; checked ones not yet logged
    stop_signals = stack.enter_context(preemption.StopSignals())
    for step in range(start_step + 1, config.train.num_steps + 1):
      state, metrics = step_fn(state, next(batches), lazy_phases(trainer, step - 1))
      unchecked.append(metrics)
      if len(unchecked) > MAX_STEPS_AHEAD:
        jax.block_until_ready(unchecked[-MAX_STEPS_AHEAD - 1])
      last_step = config.train.num_steps
      stopping = stop_signals.should_stop(step)
      logs = due(step, config.train.log_every, last_step) or stopping
      samples = due(step, config.samples.every, last_step)
      evaluates = evaluator and due(step, config.eval.every, last_step)
      saves = due(step, config.checkpoint.every, last_step) or stopping
      if logs or samples or evaluates or saves:
        # The one host sync of these steps: nothing of a non-finite step is written.
        checked = jax.device_get(unchecked)
        divergence.check(checked, step - len(checked) + 1, saved_step, workdir)
        history += checked
        unchecked = []
      if logs:
        summary = _mean_metrics(history)
        history = []
        images_per_second, progress_line = progress.measure(step)
        logging.info('step %d/%d: %s | %s', step, config.train.num_steps,
                     metric_writer.format_scalars(summary), progress_line)
        writer.write_scalars(step, dict(summary, images_per_second=images_per_second,
                                        **learning_rates(config, step)))
      if samples:
        grid = jax.device_get(sample_fn(state, latents))  # every process joins the computation
        if is_chief:
          writer.write_image(step, 'samples', _write_samples(workdir, step, grid))
      if evaluates:
        scores = evaluator(sampling_variables(trainer, state))  # every process joins in
        logging.info('step %d/%d: %s (%s)', step, config.train.num_steps,
                     metric_writer.format_scalars(scores), fid.describe(evaluator.context))
        writer.write_scalars(step, scores, context=evaluator.context)
      if saves:
        checkpointing.save(manager, state, config)
        saved_step = step
      if stopping:
        break
    checkpointing.wait_until_finished(manager)
  if stop_signals.received and saved_step < config.train.num_steps:  # else the run is complete
    raise Preempted(f'{stop_signals.received} received: saved the checkpoint of step '
                    f'{saved_step} in {checkpointing.checkpoint_dir(workdir)}; run the same '
                    'command to resume from it.')
  return state
