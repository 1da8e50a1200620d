"""The jitted data-parallel train step: D's updates with their R1 phase, G's update with its
path-length phase, the EMA; and its compilation with the mesh's shardings.

Step t draws all its randomness from `fold_in(state.key, t)`, so a run is a pure function of the
config, the data and the device count.

Labels (a conditional run, config.model.c_dim > 0; the batch is then the pair (images, labels)):
D sees each real image with its own labels; the labels of the generated images are the real
batch's labels in a random order (`generated_labels`), a uniform draw from the training labels
as NVIDIA's training loop draws them from the dataset; G's update and D's view of its fakes use
the labels the fakes were generated with. Without labels nothing of this runs.
"""

import concurrent.futures
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from facegan_jax.data import images as images_lib
from facegan_jax.sampling import generation
from facegan_jax.system import parallel
from facegan_jax.system import traced_programs
from facegan_jax.training import ada
from facegan_jax.training import augment
from facegan_jax.training import augment_step
from facegan_jax.training import divergence
from facegan_jax.training import ema
from facegan_jax.training import losses
from facegan_jax.training import optimizers
from facegan_jax.training import r3gan_step
from facegan_jax.training.state import TrainState
from facegan_jax.training.state import create_train_state
from facegan_jax.training.trainer import Trainer


def _variables(params, batch_stats):
  return {'params': params, 'batch_stats': batch_stats}


def _apply_train(module, params, batch_stats, inputs, noise_key=None, labels=None):
  """Runs `module` in training mode, drawing from `noise_key` if it samples (StyleGAN2's noise
  and style mixing), conditioned on `labels` [B, c_dim] if given; returns (outputs, updated
  batch statistics)."""
  rngs = {} if noise_key is None else {'noise': noise_key}
  conditioning = {} if labels is None else {'c': labels}
  outputs, updates = module.apply(_variables(params, batch_stats), inputs, train=True,
                                  rngs=rngs, mutable=['batch_stats'], **conditioning)
  return outputs, updates.get('batch_stats', batch_stats)


def _with_real_signs(trainer, state, real_logits):
  """The state with sign(D's logits on reals) added to the adaptive controller's sums (only with
  the pipe on, in that mode), and this update's (sum of signs, count); the sums are over the
  global batch."""
  sign_sum, count = ada.accumulate_signs(0.0, 0, jax.lax.stop_gradient(real_logits))
  if trainer.augment_pipe is not None and trainer.ada_schedule.mode == 'adaptive':
    state = state.replace(ada_sign_sum=state.ada_sign_sum + sign_sum,
                          ada_count=state.ada_count + count)
  return state, (sign_sum, count)


def _ada_update(trainer, state, signs, batch_size):
  """After the step's updates (state.step already counts it): `augment_step.next_p`, and the
  metric ada_rt (the mean sign of D's logits on this step's reals, over all its D updates)."""
  state, metrics = augment_step.next_p(trainer, state, batch_size)
  return state, dict(metrics, ada_rt=sum(s for s, _ in signs) / sum(c for _, c in signs))


def _r1_loss(trainer, d_params, stats, real, augment_key, p, labels=None):
  """(r1_every * r1_gamma / 2 * R1, R1) at the real images [B, H, W, C], D seeing them
  augmented with `augment_key`: the gradient is taken with respect to the images before
  augmentation, as NVIDIA's StyleGAN2-ADA and DiffAugment's StyleGAN2 do."""
  view = lambda x: augment_step.discriminator_view(trainer, augment_key, x, p)
  logits_fn = lambda x: _apply_train(trainer.discriminator, d_params, stats, view(x),
                                     labels=labels)[0]
  r1 = losses.r1_penalty(logits_fn, real)
  return 0.5 * trainer.r1_gamma * trainer.r1_every * r1, r1


def _lazy_r1_update(trainer, state, real, augment_key, labels=None):
  """D's lazy R1 phase (r1_every > 1): its own Adam step on the weighted R1; (state, R1)."""
  (_, r1), grads = jax.value_and_grad(
      lambda p: _r1_loss(trainer, p, state.d_batch_stats, real, augment_key, state.ada_p,
                         labels),
      has_aux=True)(state.d_params)
  d_params, d_opt_state = optimizers.apply_step(trainer.d_optimizer, state.d_params,
                                                state.d_opt_state, grads)
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


def _discriminator_update(trainer, state, real, fakes, key, lazy_r1, labels=(None, None)):
  """One Adam step of D on its loss (+ R1 in the same step if r1_every is 1), then, if
  `lazy_r1`, R1's step of its own; returns (state, metrics of this update, (sum, count) of the
  signs of D's logits on the reals).

  real, fakes: [B, H, W, C] in [-1, 1]; `key` draws their augmentations; `labels`: those of
  (real, fakes), [B, c_dim] each, in a conditional run.
  """
  real_labels, fake_labels = labels
  real_key, fake_key = jax.random.split(key)
  augmented_real = augment_step.discriminator_view(trainer, real_key, real, state.ada_p)
  fakes = augment_step.discriminator_view(trainer, fake_key, fakes, state.ada_p)

  def loss_fn(d_params):
    real_logits, stats = _apply_train(trainer.discriminator, d_params, state.d_batch_stats,
                                      augmented_real, labels=real_labels)
    fake_logits, stats = _apply_train(trainer.discriminator, d_params, stats, fakes,
                                      labels=fake_labels)
    loss = trainer.discriminator_loss(real_logits, fake_logits)
    metrics = {'d_loss': loss, 'd_real': jax.nn.sigmoid(real_logits).mean(),
               'd_fake': jax.nn.sigmoid(fake_logits).mean()}
    if trainer.r1_gamma and trainer.r1_every == 1:
      r1_loss, metrics['r1'] = _r1_loss(trainer, d_params, stats, real, real_key, state.ada_p,
                                        real_labels)
      loss = loss + r1_loss
    return loss, (stats, metrics, real_logits)

  (_, (stats, metrics, real_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.d_params)
  state, signs = _with_real_signs(trainer, state, real_logits)
  d_params, d_opt_state = optimizers.apply_step(trainer.d_optimizer, state.d_params,
                                                state.d_opt_state, grads)
  state = state.replace(d_params=d_params, d_batch_stats=stats, d_opt_state=d_opt_state)
  if lazy_r1:
    state, metrics['r1'] = _lazy_r1_update(trainer, state, real, real_key, real_labels)
  elif trainer.r1_gamma and trainer.r1_every > 1:
    metrics['r1'] = jnp.zeros((), jnp.float32)
  return state, dict(metrics, d_grad_norm=optax.tree.norm(grads)), signs


def _path_length_update(trainer, state, batch_size, key, labels=None):
  """G's lazy path-length phase (StyleGAN2): one Adam step on pl_every * pl_weight * the mean
  path-length penalty of batch_size / pl_batch_shrink new latents, with random noise and style
  mixing, conditioned on the first of `labels` [batch_size, c_dim] (a conditional run's G labels,
  as NVIDIA's phase reuses its gen_c); returns (state with the new pl_mean, mean path length)."""
  latent_key, noise_key, direction_key = jax.random.split(key, 3)
  count = batch_size // trainer.pl_batch_shrink
  z = jax.random.normal(latent_key, (count, trainer.latent_dim))
  conditioning = {} if labels is None else {'c': labels[:count]}

  def loss_fn(g_params):
    variables = _variables(g_params, state.g_batch_stats)
    apply = functools.partial(trainer.generator.apply, variables, rngs={'noise': noise_key})
    ws = apply(z, method='styles', **conditioning)
    synthesize = lambda ws: apply(ws, 'random', method='synthesize')
    direction = losses.path_length_noise(direction_key, jax.eval_shape(synthesize, ws).shape)
    lengths = losses.path_lengths(synthesize, ws, direction)
    penalty, pl_mean = losses.path_length_penalty(lengths, state.pl_mean, trainer.pl_decay)
    return trainer.pl_every * trainer.pl_weight * penalty.mean(), (pl_mean, lengths.mean())

  (_, (pl_mean, length)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
  g_params, g_opt_state = optimizers.apply_step(trainer.g_optimizer, state.g_params,
                                                state.g_opt_state, grads)
  return state.replace(g_params=g_params, g_opt_state=g_opt_state, pl_mean=pl_mean), length


def generated_labels(key: jax.Array, real_labels: jax.Array) -> jax.Array:
  """Labels of the generated images: each D update's real labels [d_steps, B, c_dim] in a
  random order of its own (the batch is a uniform sample of the data, so each is a uniform draw
  from the training labels)."""
  keys = jax.random.split(key, real_labels.shape[0])
  return jax.vmap(lambda k, labels: jax.random.permutation(k, labels))(keys, real_labels)


def train_step(trainer: Trainer, state: TrainState, batch, phases: LazyPhases):
  """`d_steps` discriminator updates (and the lazy R1 step), then one generator update (and the
  lazy path-length step), or the other way round if trainer.generator_first; then the EMA of G.

  Args:
    trainer: the static models, optimisers, losses and regularisers.
    state: the current TrainState.
    batch: [d_steps, B, H, W, C] uint8 real images, one slice per discriminator update; in a
      conditional run the pair (those images, their labels [d_steps, B, c_dim] float32).
    phases: `lazy_phases(trainer, state.step)`, static.

  Returns:
    (new state, metrics): d_loss, g_loss, d_real = mean D(x), d_fake = mean D(G(z)) (the last
    discriminator update's, before it), d_grad_norm and g_grad_norm (global L2 norms of the last
    discriminator update's and of the generator update's gradients), r1 when R1 is on (0 on
    steps without it when lazy) and path_length likewise (StyleGAN2's regulariser), augment_p
    and ada_rt with ADA's pipe on (the step's p and mean sign of D's logits on reals), and
    params_finite (bool: every parameter of the new state is finite; see `divergence`). The
    generator's forward pass of the last discriminator update is reused, through its VJP, for
    the generator update, as in the DCGAN reference, unless trainer.fresh_generator_pass or
    trainer.generator_first.
  """
  step_key = jax.random.fold_in(state.key, state.step)
  flip_key, latent_key, augment_key = jax.random.split(step_key, 3)
  # Drawn from a stream of its own, so that the three above stay those of earlier versions.
  noise_key, pl_key = jax.random.split(jax.random.fold_in(step_key, 1))
  batch, real_labels = batch if isinstance(batch, tuple) else (batch, None)
  # From a stream of their own, so that the keys above stay those of unconditional runs.
  fake_labels = (None if real_labels is None else
                 generated_labels(jax.random.fold_in(step_key, 2), real_labels))
  label_of = lambda labels, i: None if labels is None else labels[i]
  real = images_lib.to_model_range(batch)
  if trainer.random_flip:
    real = augment.random_flip(flip_key, real)
  d_steps, batch_size = batch.shape[:2]
  latents = jax.random.normal(latent_key, (d_steps, batch_size, trainer.latent_dim))
  augment_keys = jax.random.split(augment_key, d_steps + 1)
  noise_keys = jax.random.split(noise_key, d_steps)

  def generate(g_params, g_stats, z, key, labels):
    return _apply_train(trainer.generator, g_params, g_stats, z, key, labels)

  fresh = trainer.fresh_generator_pass or trainer.generator_first
  g_latents = (jax.random.normal(jax.random.fold_in(latent_key, 1), latents.shape[1:]) if fresh
               else latents[-1])
  g_noise_key = jax.random.fold_in(noise_key, d_steps) if fresh else noise_keys[-1]
  g_labels = (generated_labels(jax.random.fold_in(step_key, 3), real_labels[-1:])[0]
              if fresh and real_labels is not None else label_of(fake_labels, -1))

  def generator_pass(state):
    """(fakes, their pullback to G's params, G's updated statistics) of the G update's pass."""
    return jax.vjp(lambda p: generate(p, state.g_batch_stats, g_latents, g_noise_key, g_labels),
                   state.g_params, has_aux=True)

  def generator_phase(state, fakes, pullback, g_stats):
    """G's update from its pass (D frozen), then its lazy path-length step."""
    def g_loss_fn(fakes):
      fakes = augment_step.discriminator_view(trainer, augment_keys[-1], fakes, state.ada_p)
      logits, d_stats = _apply_train(trainer.discriminator, state.d_params,
                                     state.d_batch_stats, fakes, labels=g_labels)
      return trainer.generator_loss(logits), d_stats

    (g_loss, d_stats), grad_fakes = jax.value_and_grad(g_loss_fn, has_aux=True)(fakes)
    if fresh:
      state = state.replace(d_batch_stats=d_stats)
    (g_grads,) = pullback(grad_fakes)
    g_params, g_opt_state = optimizers.apply_step(trainer.g_optimizer, state.g_params,
                                                  state.g_opt_state, g_grads)
    state = state.replace(g_params=g_params, g_batch_stats=g_stats, g_opt_state=g_opt_state)
    metrics = {'g_loss': g_loss, 'g_grad_norm': optax.tree.norm(g_grads)}
    if phases.path_length:
      state, metrics['path_length'] = _path_length_update(trainer, state, batch_size, pl_key,
                                                          g_labels)
    elif trainer.pl_weight:
      metrics['path_length'] = jnp.zeros((), jnp.float32)
    return state, metrics

  if trainer.generator_first:
    fakes, pullback, _ = generator_pass(state)  # G's statistics: from the D phase's passes
    state, g_metrics = generator_phase(state, fakes, pullback, state.g_batch_stats)
  signs = []  # (sum, count) of the signs of D's logits on reals, per D update
  for i in range(d_steps if fresh else d_steps - 1):
    labels = (label_of(real_labels, i), label_of(fake_labels, i))
    fakes, g_stats = generate(state.g_params, state.g_batch_stats, latents[i], noise_keys[i],
                              labels[1])
    state, metrics, update_signs = _discriminator_update(
        trainer, state.replace(g_batch_stats=g_stats), real[i], fakes, augment_keys[i], phases.r1,
        labels)
    signs.append(update_signs)
  if not trainer.generator_first:
    fakes, pullback, g_stats = generator_pass(state)
    if not fresh:
      state, metrics, update_signs = _discriminator_update(
          trainer, state, real[-1], jax.lax.stop_gradient(fakes), augment_keys[-2], phases.r1,
          (label_of(real_labels, -1), g_labels))
      signs.append(update_signs)
    state, g_metrics = generator_phase(state, fakes, pullback, g_stats)
  metrics = dict(metrics, **g_metrics)
  if trainer.ema_decay:
    decay = (ema.ramped_decay(trainer.ema_decay, batch_size, trainer.ema_rampup,
                              state.step * batch_size) if trainer.ema_rampup
             else trainer.ema_decay)
    state = state.replace(g_ema_params=ema.update(state.g_ema_params, state.g_params, decay))
  state = state.replace(step=state.step + 1)
  if trainer.augment_pipe is not None:
    state, ada_metrics = _ada_update(trainer, state, signs, batch_size)
    metrics.update(ada_metrics)
  params_finite = divergence.all_finite(state.g_params, state.d_params, state.g_ema_params)
  return state, dict(metrics, **{divergence.PARAMS_FINITE: params_finite})


def sampling_variables(trainer: Trainer, state: TrainState):
  """The generator variables that sample and evaluate (`generation.generate`'s)."""
  return _variables(getattr(state, trainer.sampling_params_field), state.g_batch_stats)


def generate_samples(trainer: Trainer, state: TrainState, latents, labels=None):
  """Images [N, H, W, C] in [-1, 1] from latents [N, latent_dim] (and labels [N, c_dim] in a
  conditional run), as `generation` samples."""
  return generation.generate(trainer.generator, sampling_variables(trainer, state), latents,
                             labels=labels)


def step_function(trainer: Trainer):
  """The train step of `trainer`'s recipe: R3GAN's (training/r3gan_step.py) or `train_step`;
  both take (trainer, state, batch [trainer.real_batches, B, H, W, C], phases)."""
  return r3gan_step.train_step if trainer.r3gan_schedules else train_step


def compile_functions(trainer: Trainer, mesh, image_shape):
  """jit-compiled (init, step, sample) with the state replicated and the batch sharded; step
  takes (state, batch, `lazy_phases(trainer, state.step)`) and compiles once per phases."""
  replicated = parallel.replicated(mesh)
  init = jax.jit(functools.partial(create_train_state, trainer, image_shape=image_shape),
                 out_shardings=replicated)
  step = jax.jit(functools.partial(step_function(trainer), trainer), static_argnums=2,
                 in_shardings=(replicated, parallel.batch_sharding(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=0)
  sample = jax.jit(functools.partial(generate_samples, trainer), out_shardings=replicated)
  return init, step, sample


def phases_of_run(trainer: Trainer, start_step: int, num_steps: int) -> list[LazyPhases]:
  """The lazy-phase combinations of the steps from state.step == `start_step` to `num_steps`,
  in order of first use: a pattern that repeats every lcm(r1_every, pl_every) steps."""
  period = math.lcm(trainer.r1_every, trainer.pl_every)
  steps = range(start_step, min(num_steps, start_step + period))
  return list(dict.fromkeys(lazy_phases(trainer, step) for step in steps))


class StepPrograms:
  """The jitted `step` (of `compile_functions`) compiled ahead of time for each LazyPhases of
  `phase_list` (`phases_of_run`, in order of first use), through `traced_programs` (a warm start
  reads the traced program instead of tracing it). The first program is compiled before the
  constructor returns; the others one after another in a background thread meanwhile, so the
  run's first step waits for one program only. `programs[phases]` takes (state, batch) and
  returns (state, metrics) as the step does, waiting for its compilation if it is still
  running. `close()` abandons the compilations not started (a run that stops does not wait for
  them).

  Args:
    step: the jitted step.
    state: the TrainState the run starts from (only its structure, shapes and shardings are
      kept: the steps donate its buffers); replicated.
    batch_spec: jax.ShapeDtypeStruct of the global batch, with its sharding.
    phase_list: the LazyPhases to compile.
    description: what the step computes beyond its code (the run's config), JSON-able.
  """

  def __init__(self, step, state, batch_spec, phase_list, description):
    leaves, self._treedef = jax.tree.flatten(state)
    self._key_impls = [jax.random.key_impl(leaf)
                       if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) else None
                       for leaf in leaves]
    raw_specs = [jax.ShapeDtypeStruct(raw.shape, raw.dtype, sharding=leaf.sharding)
                 for leaf, raw in zip(leaves, self._raw(leaves))]
    replicated = leaves[0].sharding

    def compile_program(phases):
      def flat_step(raw_leaves, batch):
        state, metrics = step(jax.tree.unflatten(self._treedef, self._typed(raw_leaves)), batch,
                              phases)
        return self._raw(jax.tree.leaves(state)), metrics
      return traced_programs.compile_program(
          flat_step, (raw_specs, batch_spec), out_shardings=replicated, donate_argnums=(0,),
          description={'function': 'train_step', 'phases': phases._asdict(), 'run': description})

    self._pool = concurrent.futures.ThreadPoolExecutor(1)
    self._programs = {phases: compile_program(phases) for phases in phase_list[:1]}
    self._pending = {phases: self._pool.submit(compile_program, phases)
                     for phases in phase_list[1:]}

  def _raw(self, leaves):
    """The state's leaves with its key arrays as their key data (exported programs take no key
    types)."""
    return [jax.random.key_data(leaf) if impl else leaf
            for leaf, impl in zip(leaves, self._key_impls, strict=True)]

  def _typed(self, leaves):
    return [jax.random.wrap_key_data(leaf, impl=impl) if impl else leaf
            for leaf, impl in zip(leaves, self._key_impls, strict=True)]

  def __getitem__(self, phases):
    if phases not in self._programs:
      self._programs[phases] = self._pending.pop(phases).result()
    program = self._programs[phases]

    def run(state, batch):
      raw_leaves, metrics = program(self._raw(jax.tree.leaves(state)), batch)
      return jax.tree.unflatten(self._treedef, self._typed(raw_leaves)), metrics
    return run

  def close(self):
    self._pool.shutdown(wait=False, cancel_futures=True)
