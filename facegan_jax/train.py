"""The train state, the jitted data-parallel train step, and the training loop.

Keys: `jax.random.key(config.seed)` is split by `fold_in` into fixed streams (INIT_STREAM for
parameters, TRAIN_STREAM for the state's base key, SAMPLE_STREAM for the fixed sample latents).
Step t draws all its randomness from `fold_in(state.key, t)`, so a run is a pure function of the
config, the data and the device count.
"""

import contextlib
import functools
import os
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from facegan_jax import augment
from facegan_jax import checkpointing
from facegan_jax import ema
from facegan_jax import fid
from facegan_jax import images as images_lib
from facegan_jax import input_pipeline
from facegan_jax import losses
from facegan_jax import metric_writer
from facegan_jax import models
from facegan_jax import parallel
from facegan_jax import workdir_lock
from facegan_jax.errors import check_at_least

INIT_STREAM, TRAIN_STREAM, SAMPLE_STREAM = 0, 1, 2


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


def _adam(learning_rate, optim):
  return optax.adam(learning_rate, b1=optim.b1, b2=optim.b2)


def make_trainer(config: ml_collections.ConfigDict) -> Trainer:
  """Builds models, optimisers, losses and regularisers from the config; UserError if bad."""
  generator, discriminator = models.build_models(config.model, config.train.compute_dtype)
  for field, minimum in (('train.d_steps', 1), ('loss.r1_gamma', 0), ('loss.r1_every', 1),
                         ('augment.strength', 0), ('ema.halflife_images', 0)):
    check_at_least(config, field, minimum)
  halflife = config.ema.halflife_images
  return Trainer(generator=generator, discriminator=discriminator,
                 g_optimizer=_adam(config.optim.g_learning_rate, config.optim),
                 d_optimizer=_adam(config.optim.d_learning_rate, config.optim),
                 discriminator_loss=losses.get_discriminator_loss(config.loss.discriminator),
                 generator_loss=losses.get_generator_loss(config.loss.generator),
                 latent_dim=config.model.latent_dim,
                 random_flip=config.data.random_flip,
                 r1_gamma=config.loss.r1_gamma, r1_every=config.loss.r1_every,
                 augment_policy=augment.parse_policy(config.augment.policy),
                 augment_strength=config.augment.strength,
                 ema_decay=(ema.decay_per_step(config.train.batch_size, halflife)
                            if halflife else 0.0))


def _variables(params, batch_stats):
  return {'params': params, 'batch_stats': batch_stats}


def _apply_train(module, params, batch_stats, inputs):
  """Runs `module` in training mode; returns (outputs, updated batch statistics)."""
  outputs, updates = module.apply(_variables(params, batch_stats), inputs, train=True,
                                  mutable=['batch_stats'])
  return outputs, updates.get('batch_stats', batch_stats)


def create_train_state(trainer: Trainer, key: jax.Array, image_shape) -> TrainState:
  """Initial state from the run's root key; `image_shape` is (H, W, C)."""
  g_key, d_key = jax.random.split(jax.random.fold_in(key, INIT_STREAM))
  z = jnp.zeros((1, trainer.latent_dim), jnp.float32)
  g_vars = trainer.generator.init(g_key, z, train=False)
  d_vars = trainer.discriminator.init(d_key, jnp.zeros((1,) + tuple(image_shape)), train=False)
  g_params, d_params = g_vars['params'], d_vars['params']
  return TrainState(
      step=jnp.zeros((), jnp.int32), key=jax.random.fold_in(key, TRAIN_STREAM),
      g_params=g_params, g_batch_stats=g_vars.get('batch_stats', {}),
      d_params=d_params, d_batch_stats=d_vars.get('batch_stats', {}),
      g_opt_state=trainer.g_optimizer.init(g_params),
      d_opt_state=trainer.d_optimizer.init(d_params),
      g_ema_params=g_params if trainer.ema_decay else {})


def _augment(trainer, key, images):
  return augment.augment(key, images, trainer.augment_policy, trainer.augment_strength)


def _discriminator_update(trainer, state, real, fakes, key):
  """One Adam step of D on its loss (+ R1); returns (state, metrics of this update).

  real, fakes: [B, H, W, C] in [-1, 1]; `key` draws their augmentations.
  """
  real_key, fake_key = jax.random.split(key)
  real = _augment(trainer, real_key, real)
  fakes = _augment(trainer, fake_key, fakes)

  def loss_fn(d_params):
    real_logits, stats = _apply_train(trainer.discriminator, d_params, state.d_batch_stats, real)
    fake_logits, stats = _apply_train(trainer.discriminator, d_params, stats, fakes)
    loss = trainer.discriminator_loss(real_logits, fake_logits)
    metrics = {'d_loss': loss, 'd_real': jax.nn.sigmoid(real_logits).mean(),
               'd_fake': jax.nn.sigmoid(fake_logits).mean()}
    if trainer.r1_gamma:
      def r1():
        logits_fn = lambda x: _apply_train(trainer.discriminator, d_params, stats, x)[0]
        return losses.r1_penalty(logits_fn, real)
      # Lazy regularisation: every r1_every-th step, with a weight that keeps the average.
      metrics['r1'] = jax.lax.cond(state.step % trainer.r1_every == 0, r1, lambda: 0.0)
      loss = loss + 0.5 * trainer.r1_gamma * trainer.r1_every * metrics['r1']
    return loss, (stats, metrics)

  (_, (stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
  updates, opt_state = trainer.d_optimizer.update(grads, state.d_opt_state, state.d_params)
  state = state.replace(d_params=optax.apply_updates(state.d_params, updates),
                        d_batch_stats=stats, d_opt_state=opt_state)
  return state, dict(metrics, d_grad_norm=optax.tree.norm(grads))


def train_step(trainer: Trainer, state: TrainState, batch: jax.Array):
  """`d_steps` discriminator updates, then one generator update (and the EMA of G).

  Args:
    trainer: the static models, optimisers, losses and regularisers.
    state: the current TrainState.
    batch: [d_steps, B, H, W, C] uint8 real images, one slice per discriminator update.

  Returns:
    (new state, metrics): d_loss, g_loss, d_real = mean D(x), d_fake = mean D(G(z)) (the last
    discriminator update's, before it), d_grad_norm and g_grad_norm (global L2 norms of the last
    discriminator update's and of the generator update's gradients), and r1 when R1 is on. The
    generator's forward pass of the last discriminator update is reused, through its VJP, for
    the generator update, as in the DCGAN reference.
  """
  flip_key, latent_key, augment_key = jax.random.split(
      jax.random.fold_in(state.key, state.step), 3)
  real = input_pipeline.to_model_range(batch)
  if trainer.random_flip:
    real = input_pipeline.random_flip(flip_key, real)
  d_steps, batch_size = batch.shape[:2]
  latents = jax.random.normal(latent_key, (d_steps, batch_size, trainer.latent_dim))
  augment_keys = jax.random.split(augment_key, d_steps + 1)

  def generate(g_params, z):
    return _apply_train(trainer.generator, g_params, state.g_batch_stats, z)

  for i in range(d_steps - 1):
    fakes, g_stats = generate(state.g_params, latents[i])
    state, _ = _discriminator_update(trainer, state.replace(g_batch_stats=g_stats), real[i],
                                     fakes, augment_keys[i])
  fakes, pullback, g_stats = jax.vjp(lambda p: generate(p, latents[-1]), state.g_params,
                                     has_aux=True)
  state, metrics = _discriminator_update(trainer, state, real[-1],
                                         jax.lax.stop_gradient(fakes), augment_keys[-2])

  def g_loss_fn(fakes):
    fakes = _augment(trainer, augment_keys[-1], fakes)
    logits, _ = _apply_train(trainer.discriminator, state.d_params, state.d_batch_stats, fakes)
    return trainer.generator_loss(logits)

  g_loss, grad_fakes = jax.value_and_grad(g_loss_fn)(fakes)
  (g_grads,) = pullback(grad_fakes)
  updates, g_opt_state = trainer.g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, updates)
  g_ema_params = (ema.update(state.g_ema_params, g_params, trainer.ema_decay)
                  if trainer.ema_decay else state.g_ema_params)
  state = state.replace(step=state.step + 1, g_params=g_params, g_batch_stats=g_stats,
                        g_opt_state=g_opt_state, g_ema_params=g_ema_params)
  return state, dict(metrics, g_loss=g_loss, g_grad_norm=optax.tree.norm(g_grads))


def sampling_params(trainer: Trainer, state: TrainState):
  """The generator parameters to sample and evaluate with: the EMA ones when there are any."""
  return state.g_ema_params if trainer.ema_decay else state.g_params


def generate_samples(trainer: Trainer, state: TrainState, latents):
  """Images [N, H, W, C] in [-1, 1] from latents [N, latent_dim], BatchNorm in inference mode."""
  return trainer.generator.apply(
      _variables(sampling_params(trainer, state), state.g_batch_stats), latents, train=False)


def compile_functions(trainer: Trainer, mesh, image_shape):
  """jit-compiled (init, step, sample) with the state replicated and the batch sharded."""
  replicated = parallel.replicated(mesh)
  init = jax.jit(functools.partial(create_train_state, trainer, image_shape=image_shape),
                 out_shardings=replicated)
  step = jax.jit(functools.partial(train_step, trainer),
                 in_shardings=(replicated, parallel.batch_sharding(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=0)
  sample = jax.jit(functools.partial(generate_samples, trainer), out_shardings=replicated)
  return init, step, sample


def sample_latents(config: ml_collections.ConfigDict) -> jax.Array:
  """The fixed latents of the sample grids: [num_samples, latent_dim] from the config seed."""
  key = jax.random.fold_in(jax.random.key(config.seed), SAMPLE_STREAM)
  return jax.random.normal(key, (config.train.num_samples, config.model.latent_dim))


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
  """Averages a list of per-step metric dicts (one host sync) into Python floats."""
  stacked = jax.device_get(history)
  return {name: float(np.mean([m[name] for m in stacked])) for name in stacked[0]}


def _write_samples(workdir, step, samples):
  """Writes the PNG grid of `samples` [N, H, W, C] in [-1, 1]; returns it, uint8."""
  path = os.path.join(workdir, 'samples', f'step_{step:07d}.png')
  grid = images_lib.make_grid(images_lib.to_uint8(samples))
  images_lib.save_png(path, grid)
  logging.info('Wrote %s', path)
  return grid


def check_train_config(config: ml_collections.ConfigDict):
  """Raises UserError naming the first bad field of `config.train` or `config.checkpoint`."""
  for field in ('train.num_steps', 'train.log_every', 'train.sample_every', 'train.num_samples',
                'checkpoint.every', 'checkpoint.keep'):
    check_at_least(config, field, 1)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains `config` in `workdir`, resuming from its newest checkpoint; returns the final state.

  Writes checkpoints/ (every config.checkpoint.every steps and at the end), samples/*.png,
  metrics.jsonl and TensorBoard events (losses, D outputs, gradient norms, learning rates,
  images/s, sample grids, and FID/KID/precision/recall/density/coverage every
  config.eval.eval_every steps if not 0). Raises
  UserError, before changing anything in `workdir`, for a bad config, missing Inception
  weights, a config that cannot continue the run in `workdir`, or a workdir in use by another
  run.
  """
  check_train_config(config)
  trainer = make_trainer(config)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.train.batch_size, mesh.devices.size)
  is_chief = jax.process_index() == 0
  # Loads the Inception weights before anything is written: UserError if they are missing.
  extractor = fid.make_extractor(config.eval, mesh) if config.eval.eval_every else None
  with contextlib.ExitStack() as stack:
    if is_chief:
      stack.enter_context(workdir_lock.hold(workdir))
    manager = stack.enter_context(checkpointing.make_manager(workdir, config.checkpoint.keep))
    image_shape = (config.model.resolution, config.model.resolution, config.model.channels)
    init, step_fn, sample_fn = compile_functions(trainer, mesh, image_shape)
    state = checkpointing.resume(manager, workdir, config, init(jax.random.key(config.seed)))
    images = input_pipeline.load_images(config)
    if is_chief:
      os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
    latents = sample_latents(config)
    start_step = int(state.step)
    evaluator = (fid.make_evaluator(config, functools.partial(generate_samples, trainer),
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
    history = []
    for step in range(start_step + 1, config.train.num_steps + 1):
      state, metrics = step_fn(state, next(batches))
      history.append(metrics)
      is_last = step == config.train.num_steps
      if step % config.train.log_every == 0 or is_last:
        summary = _mean_metrics(history)
        history = []
        images_per_second, progress_line = progress.measure(step)
        logging.info('step %d/%d: %s | %s', step, config.train.num_steps,
                     metric_writer.format_scalars(summary), progress_line)
        writer.write_scalars(step, dict(  # the learning rates are constant (no schedule)
            summary, images_per_second=images_per_second,
            g_learning_rate=config.optim.g_learning_rate,
            d_learning_rate=config.optim.d_learning_rate))
      if step % config.train.sample_every == 0 or is_last:
        samples = jax.device_get(sample_fn(state, latents))  # every process joins the computation
        if is_chief:
          writer.write_image(step, 'samples', _write_samples(workdir, step, samples))
      if evaluator and (step % config.eval.eval_every == 0 or is_last):
        scores = evaluator(state)  # every process joins the computation
        logging.info('step %d/%d: %s (%s)', step, config.train.num_steps,
                     metric_writer.format_scalars(scores), fid.describe(evaluator.context))
        writer.write_scalars(step, scores, context=evaluator.context)
      if step % config.checkpoint.every == 0 or is_last:
        checkpointing.save(manager, state, config)
    manager.wait_until_finished()
  return state
