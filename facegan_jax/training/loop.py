"""The training loop: resume, the steps, and the periodic actions between them (progress,
samples, FID, checkpoints), stopping cleanly on signals and on divergence."""

import contextlib
import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from facegan_jax import models
from facegan_jax.data import image_sources
from facegan_jax.data import images as images_lib
from facegan_jax.data import input_pipeline
from facegan_jax.metrics import fid
from facegan_jax.metrics import lpips
from facegan_jax.metrics import ppl
from facegan_jax.runs import checkpointing
from facegan_jax.runs import metric_writer
from facegan_jax.runs import storage
from facegan_jax.runs import workdir_lock
from facegan_jax.sampling import generation
from facegan_jax.system import compile_cache
from facegan_jax.system import parallel
from facegan_jax.system.errors import Preempted
from facegan_jax.system.errors import UserError
from facegan_jax.training import config_check
from facegan_jax.training import divergence
from facegan_jax.training import optimizers
from facegan_jax.training import preemption
from facegan_jax.training import state as state_lib
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib
from facegan_jax.training.state import TrainState


CONFIG_FILE = 'config.json'  # in the workdir: the config of the latest run there, every field


# How many steps the loop may dispatch before the oldest of them has finished. XLA:CPU runs at
# most 32 queued multi-device programs per device and blocks its (device-count-sized) thread
# pool on the 33rd, which can starve a running step's all-reduce of threads: with many
# simulated CPU devices a long stretch without a host sync deadlocked (XLA aborts after 60 s).
# A few steps ahead keep every backend busy.
MAX_STEPS_AHEAD = 4


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


def _compile_steps(trainer, step_fn, state, config, mesh, image_shape, c_dim):
  """The run's train-step programs (`step_lib.StepPrograms`) for batches as
  `input_pipeline.global_batches` makes them (with labels [.., c_dim] if `c_dim`), logging how
  long the first took and whether it came from the persistent compilation cache."""
  phase_list = step_lib.phases_of_run(trainer, int(state.step), config.train.num_steps)
  leading = (trainer.real_batches, config.train.batch_size)
  sharding = parallel.batch_sharding(mesh)
  batch_spec = jax.ShapeDtypeStruct((*leading, *image_shape), jnp.uint8, sharding=sharding)
  if c_dim:
    batch_spec = (batch_spec,
                  jax.ShapeDtypeStruct((*leading, c_dim), jnp.float32, sharding=sharding))
  start = time.perf_counter()
  with compile_cache.CacheCount() as count:
    programs = step_lib.StepPrograms(step_fn, state, batch_spec, phase_list, config.to_dict())
  logging.info('The train step is ready in %.1f s: %s; its other %d lazy-phase program(s) '
               'compile while the first steps run.', time.perf_counter() - start,
               count.describe(), max(len(phase_list) - 1, 0))
  return programs


def write_config(workdir: str, config: ml_collections.ConfigDict):
  """Writes every field of `config` to workdir/config.json (the run's config, for people; the
  checkpoints hold their own copy)."""
  storage.write_text(os.path.join(workdir, CONFIG_FILE), json.dumps(config.to_dict(), indent=1))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       initial_networks: state_lib.InitialNetworks | None = None) -> TrainState:
  """Trains `config` in `workdir`, resuming from its newest checkpoint; returns the final state.
  A new run starts from `initial_networks` if given (those of config.init.from_pkl, which the
  main command reads: facegan_jax.pretrained.convert_stylegan2.read_initial_networks).

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
  if config.init.from_pkl and initial_networks is None:
    raise UserError(f'config.init.from_pkl={config.init.from_pkl} is read by python -m '
                    'facegan_jax.main; pass its networks '
                    '(convert_stylegan2.read_initial_networks).')
  trainer = trainer_lib.make_trainer(config)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.train.batch_size, mesh.devices.size)
  is_chief = jax.process_index() == 0
  storage.check_reachable(workdir, '--workdir')
  # Loads the Inception weights and the images before anything is written: a missing or
  # unreadable input is a UserError that leaves the workdir as it was.
  extractor = fid.make_extractor(config.eval, mesh) if config.eval.every else None
  lpips_params = None  # loaded, with the space checked, before anything is written
  if config.eval.every and config.eval.ppl:
    ppl.check_applies(config.model, config.eval)
    lpips_params = lpips.load(config.eval.lpips_weights)
  dataset = image_sources.load_dataset(config)  # labels: None unless the run is conditional
  images = dataset.images
  if len(images) < config.train.batch_size:
    raise UserError(f'the data have {len(images)} images, fewer than one batch '
                    f'(config.train.batch_size={config.train.batch_size}); use a batch of at most '
                    f'{len(images)} or more images.')
  with contextlib.ExitStack() as stack:
    if is_chief:
      stack.enter_context(workdir_lock.hold(workdir))
    manager = stack.enter_context(checkpointing.training_manager(workdir,
                                                                 config.checkpoint.keep))
    newest = checkpointing.check_can_resume(manager, workdir, config)  # before any compile
    if newest is not None and newest >= config.train.num_steps:
      logging.warning('Nothing to train: the newest checkpoint in %s is of step %d, and '
                      'config.train.num_steps=%d; raise train.num_steps to train further.',
                      checkpointing.checkpoint_dir(workdir), newest, config.train.num_steps)
    init, step_fn, sample_fn = step_lib.compile_functions(trainer, mesh,
                                                          models.image_shape(config.model))
    state = init(jax.random.key(config.seed))
    if initial_networks is not None:  # replicated as the state that the step takes
      state = jax.jit(functools.partial(state_lib.start_from, trainer),
                      out_shardings=parallel.replicated(mesh))(state, initial_networks)
    state = checkpointing.resume(manager, workdir, config, state)
    if is_chief:
      storage.makedirs(os.path.join(workdir, 'samples'))
      write_config(workdir, config)
      logging.info('Every field of the config: %s', os.path.join(workdir, CONFIG_FILE))
    latents = generation.latents(generation.stream_key(config.seed, generation.SAMPLE_STREAM),
                                 config.samples.count, config.model.latent_dim)
    grid_labels = (None if dataset.labels is None else generation.draw_labels(
        jax.random.fold_in(generation.stream_key(config.seed, generation.SAMPLE_STREAM), 1),
        dataset.labels, config.samples.count))
    start_step = int(state.step)
    evaluator = (fid.make_evaluator(config, functools.partial(generation.generate,
                                                              trainer.generator),
                                    extractor, images, dataset.labels) if extractor else None)
    writer = stack.enter_context(metric_writer.MetricWriter(workdir, is_chief, start_step))
    batches = stack.enter_context(contextlib.closing(input_pipeline.global_batches(
        images, mesh, seed=config.seed, start_step=start_step,
        batch_size=config.train.batch_size, d_steps=trainer.real_batches,
        prefetch_size=config.data.prefetch, labels=dataset.labels)))
    logging.info('Training %s from step %d to %d on %d device(s), %d images, global batch %d.',
                 config.model.name, start_step, config.train.num_steps, mesh.devices.size,
                 len(images), config.train.batch_size)

    step_programs = _compile_steps(trainer, step_fn, state, config, mesh, images.shape[1:],
                                   0 if dataset.labels is None else dataset.labels.shape[1])
    stack.callback(step_programs.close)
    progress = _Progress(start_step, config.train.num_steps, config.train.batch_size)
    saved_step = start_step or None  # the newest checkpoint, None if there is none
    unchecked, history = [], []  # device metrics not yet checked; checked ones not yet logged
    stop_signals = stack.enter_context(preemption.StopSignals())
    for step in range(start_step + 1, config.train.num_steps + 1):
      state, metrics = step_programs[step_lib.lazy_phases(trainer, step - 1)](state, next(batches))
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
                                        **optimizers.learning_rates(config, step)))
      if samples:
        grid = jax.device_get(sample_fn(state, latents, grid_labels))  # every process joins in
        if is_chief:
          writer.write_image(step, 'samples', _write_samples(workdir, step, grid))
      if evaluates:
        variables = step_lib.sampling_variables(trainer, state)
        scores = evaluator(variables)  # every process joins in
        if lpips_params is not None:
          scores['ppl'] = ppl.of_generator(trainer.generator, variables, config.model,
                                           config.eval, config.seed, lpips_params)['ppl']
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
