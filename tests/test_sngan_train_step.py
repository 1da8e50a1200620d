"""Our train step equals Mimicry's: its own `train_step` methods of D and G, its hinge losses,
PyTorch's Adam(betas=(0, 0.9)) and its linear learning-rate decay, from the same weights, on the
same real batches and latents. Two iterations of 2 D updates and one G update (the second at a
decayed rate); parameters, BatchNorm statistics and spectral-norm vectors after them agree to
2e-5 (absolute and relative; with beta1 = 0 each Adam update is about lr * sign(gradient)), except
G's biases in front of a BatchNorm, whose gradient is round-off in both (below).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from configs import lfw_demo
from facegan_jax.data import images as images_lib
from facegan_jax.training import optimizers
from facegan_jax.training import state as state_lib
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib
from tests.helpers import mimicry_reference
from tests.test_sngan import close

RESOLUTION, WIDTH, BATCH, D_STEPS, ITERATIONS, NUM_STEPS = 32, 16, 4, 2, 2, 4


def sngan_config():
  config = lfw_demo.get_config('sngan_test')
  config.model.update(resolution=RESOLUTION, channels=3, g_width=WIDTH, d_width=WIDTH)
  config.train.update(batch_size=BATCH, d_steps=D_STEPS, num_steps=NUM_STEPS)
  config.optim.decay_steps = NUM_STEPS
  config.data.random_flip = False
  return config


def step_latents(state, config):
  """The latents train_step draws at state.step: [d_steps, B, nz] for D, [B, nz] for G."""
  _, latent_key, _ = jax.random.split(jax.random.fold_in(state.key, state.step), 3)
  shape = (BATCH, config.model.latent_dim)
  return (jax.random.normal(latent_key, (D_STEPS,) + shape),
          jax.random.normal(jax.random.fold_in(latent_key, 1), shape))


def mimicry_iteration(g_torch, d_torch, torch_optimizers, scheduler, real, latents, global_step):
  """One iteration of Mimicry's Trainer.train: D.train_step per real batch, G.train_step after
  the last, then the scheduler; generate_images draws `latents` in order instead of randn."""
  metric_log, _ = mimicry_reference.import_training()
  queue = [torch.from_numpy(np.asarray(z)) for z in latents]
  g_torch.generate_images = lambda num_images, device=None: g_torch(queue.pop(0))
  log_data = metric_log.MetricLog()
  for i in range(D_STEPS):
    batch = (torch.from_numpy(np.asarray(real[i]).transpose(0, 3, 1, 2).copy()), None)
    d_torch.train_step(batch, g_torch, torch_optimizers[1], log_data)
    if i == D_STEPS - 1:
      g_torch.train_step(batch, d_torch, torch_optimizers[0], log_data)
  assert not queue
  scheduler.step(log_data, global_step + 1)


def test_two_train_steps_equal_mimicrys():
  config = sngan_config()
  g_torch, d_torch = mimicry_reference.build(RESOLUTION, WIDTH, WIDTH)
  g_torch.train()
  d_torch.train()
  torch_optimizers = [torch.optim.Adam(net.parameters(), 2e-4, betas=(0.0, 0.9))
                for net in (g_torch, d_torch)]
  _, scheduler_lib = mimicry_reference.import_training()
  scheduler = scheduler_lib.LRScheduler('linear', torch_optimizers[1], torch_optimizers[0], NUM_STEPS)

  trainer = trainer_lib.make_trainer(config)
  state = jax.jit(lambda key: state_lib.create_train_state(trainer, key, (RESOLUTION, RESOLUTION, 3)))(
      jax.random.key(config.seed))
  g_vars = mimicry_reference.to_variables(g_torch.state_dict())
  d_vars = mimicry_reference.to_variables(d_torch.state_dict())
  state = state.replace(g_params=g_vars['params'], g_batch_stats=g_vars['batch_stats'],
                        d_params=d_vars['params'], d_batch_stats=d_vars['batch_stats'],
                        g_opt_state=trainer.g_optimizer.init(g_vars['params']),
                        d_opt_state=trainer.d_optimizer.init(d_vars['params']))
  step = jax.jit(functools.partial(step_lib.train_step, trainer, phases=step_lib.LazyPhases()))
  rng = np.random.default_rng(0)
  for iteration in range(ITERATIONS):
    batch = rng.integers(0, 256, (D_STEPS, BATCH, RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
    d_latents, g_latents = step_latents(state, config)
    # Mimicry's D step: D(real), then G makes the fakes, then D(fake).
    mimicry_iteration(g_torch, d_torch, torch_optimizers, scheduler,
                      images_lib.to_model_range(jnp.asarray(batch)),
                      list(d_latents) + [g_latents], iteration)
    state, _ = step(state, batch)
  assert torch_optimizers[0].param_groups[0]['lr'] == pytest.approx(
      optimizers.learning_rates(config, ITERATIONS + 1)['g_learning_rate'], rel=1e-6)
  # G's biases in front of a BatchNorm have gradient 0 up to round-off (the BatchNorm takes out
  # any constant); Adam scales that round-off, in both frameworks, to steps of +-lr, which the
  # running means behind them see too.
  noise_atol = 2 * 2e-4 * ITERATIONS
  g_reference = mimicry_reference.to_variables(g_torch.state_dict())
  ours = {'params': state.g_params, 'batch_stats': state.g_batch_stats}
  for path, reference in jax.tree_util.tree_leaves_with_path(g_reference):
    keys = tuple(key.key for key in path)
    value = functools.reduce(lambda tree, key: tree[key], keys, ours)
    if keys[-2:] in {('c1', 'bias'), ('c2', 'bias'), ('c_sc', 'bias')} or keys[-1] == 'mean':
      np.testing.assert_allclose(value, reference, rtol=0, atol=noise_atol)
    else:
      close(value, reference, 2e-5)
  d_reference = mimicry_reference.to_variables(d_torch.state_dict())
  close((state.d_params, state.d_batch_stats),
        (d_reference['params'], d_reference['batch_stats']), 2e-5)
