"""Offline demo: DCGAN-32 on the 100 real LFW faces that scikit-image ships (grayscale).

  python -m facegan_jax.main --config=configs/lfw_demo.py --workdir=/tmp/lfw_demo

About 1.5 minutes on a 2-core CPU (about 1,500 images/s). Writes an 8x8 sample grid to
/tmp/lfw_demo/samples/ every 500 steps: by step 2000 they are recognisable grayscale faces (eyes,
nose, mouth, hairline, varied pose and lighting), blurry at 32x32 and with some smeared ones; D
wins the game on 100 images (D(x) near 0.97). The `test` variant shrinks it to seconds; `best`
adds DiffAugment and the EMA generator (README, 'Better faces'): D stops memorising the faces
(D(x) near 0.57) and samples are smoother, at about 0.8x the speed. `sngan` trains SNGAN-32 with
Mimicry's recipe (hinge loss, 5 D updates per G update, Adam(2e-4, 0, 0.9) decaying linearly) at
widths 32 for 400 steps: 1.55 GFLOP per image and step, 41 TFLOP in all (3x the DCGAN demo's
12.8); an estimate from that count and benchmarks/README.md's share of the matmul, not a
measurement, puts it at 4-5 wall-minutes on the quiet 2-core CPU; on the loaded machine it took
11.5 CPU-minutes, over the 5 asked for. It learns slowly: after its 400 steps (3x the DCGAN demo's
CPU) it draws blurred, framed face outlines, well behind the DCGAN demo's faces
(benchmarks/README.md). `sngan_test` shrinks it to seconds.
"""

from configs import celeba

SNGAN_DEMO_WIDTH, SNGAN_DEMO_STEPS, SNGAN_DEMO_D_STEPS = 32, 400, 5


def get_config(variant=None):
  config = celeba.get_config()
  config.data.source = 'lfw_subset'
  config.model.resolution = 32
  config.model.channels = 1
  config.model.g_width = 32
  config.model.d_width = 32
  config.train.batch_size = 64
  config.train.num_steps = 2000
  config.train.log_every = 100
  config.train.sample_every = 500
  if variant == 'test':
    celeba.shrink_for_tests(config)
  elif variant == 'best':
    celeba.use_best(config, small_data=True)
  elif variant in ('sngan', 'sngan_test'):
    use_sngan_demo(config)
    if variant == 'sngan_test':  # seconds: widths 16, batch 8, 2 D updates per step, 4 steps
      celeba.shrink_for_tests(config)
      config.optim.decay_steps = config.train.num_steps
      config.model.g_width = config.model.d_width = 16
      config.train.d_steps = 2
  elif variant:
    raise ValueError(f"configs/lfw_demo.py has no variant {variant!r}; use 'test', 'best', "
                     "'sngan', 'sngan_test' or none.")
  return config


def use_sngan_demo(config):
  """SNGAN-32 with Mimicry's recipe (configs/celeba.py, use_sngan) at widths and a length that
  train in the DCGAN demo's CPU budget (benchmarks/README.md)."""
  celeba.use_sngan(config, 32)
  config.model.g_width = config.model.d_width = SNGAN_DEMO_WIDTH
  config.train.update(batch_size=64, num_steps=SNGAN_DEMO_STEPS, d_steps=SNGAN_DEMO_D_STEPS)
  config.optim.decay_steps = config.train.num_steps
  config.train.sample_every = config.train.num_steps // 4
