"""The reference of the SNGAN speed comparison: Mimicry's own SNGAN networks and train step, timed.

  python benchmarks/mimicry_sngan.py [--resolution=32] [--ngf=256] [--ndf=128]
      [--batch_sizes=64] [--d_steps=5] [--steps=10] [--channels_last]

Needs PyTorch and torch-mimicry (the test extra; README, Tests). One step is one iteration of
Mimicry's Trainer.train: `d_steps` calls of its D `train_step` (D on a real batch, G makes the
fakes, D on them, Adam), then its G `train_step` (G on fresh latents, D on the fakes, Adam);
hinge loss, Adam(2e-4, betas=(0, 0.9)), the linear learning-rate decay. Real images are a fixed
synthetic batch, as in benchmarks/train_step.py (run it with `--configs=celeba:sngan` and the same
batch size; the config's widths are Mimicry's defaults, as here). images/s is real images seen by
D per second (d_steps x batch over the median step time, after 3 warm-up steps), as
benchmarks/train_step.py counts them; torch uses as many threads as the machine has cores.
"""

import argparse
import os
import statistics
import time

import torch

from tests import mimicry_reference

WARMUP_STEPS = 3


def time_steps(args, batch_size):
  """Median seconds of one Mimicry iteration at `batch_size`."""
  generator, discriminator = mimicry_reference.build(args.resolution, args.ngf, args.ndf,
                                                     perturb_batchnorm=False)
  real = torch.rand(batch_size, 3, args.resolution, args.resolution) * 2 - 1
  if args.channels_last:
    generator, discriminator = (net.to(memory_format=torch.channels_last)
                                for net in (generator, discriminator))
    real = real.contiguous(memory_format=torch.channels_last)
  opt_g, opt_d = (torch.optim.Adam(net.parameters(), 2e-4, betas=(0.0, 0.9))
                  for net in (generator, discriminator))
  metric_log, scheduler_lib = mimicry_reference.import_training()
  scheduler = scheduler_lib.LRScheduler('linear', opt_d, opt_g, num_steps=100_000)
  seconds = []
  for step in range(WARMUP_STEPS + args.steps):
    start = time.perf_counter()
    log_data = metric_log.MetricLog()
    for _ in range(args.d_steps):
      discriminator.train_step((real, None), generator, opt_d, log_data)
    generator.train_step((real, None), discriminator, opt_g, log_data)
    scheduler.step(log_data, step + 1)
    if step >= WARMUP_STEPS:
      seconds.append(time.perf_counter() - start)
  return statistics.median(seconds)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--resolution', type=int, default=32)
  parser.add_argument('--ngf', type=int, default=None, help="None: Mimicry's default")
  parser.add_argument('--ndf', type=int, default=None, help="None: Mimicry's default")
  parser.add_argument('--batch_sizes', default='64')
  parser.add_argument('--d_steps', type=int, default=5)
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--channels_last', action='store_true')
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count())  # mimicry_reference sets one thread for the tests
  layout = 'channels_last' if args.channels_last else 'contiguous'
  print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, {layout}')
  for batch_size in map(int, args.batch_sizes.split(',')):
    seconds = time_steps(args, batch_size)
    print(f'| Mimicry SNGAN-{args.resolution} (ngf={args.ngf}, ndf={args.ndf}) | {batch_size} '
          f'| {batch_size / seconds:.1f} images/s | {seconds:.2f} s/step |',
          flush=True)


if __name__ == '__main__':
  main()
