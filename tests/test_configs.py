"""Every config file and variant builds a valid trainer; variants turn on what they document."""

import pytest

from configs import celeba
from configs import default
from configs import ffhq
from configs import lfw_demo
from configs import toy2x2
from facegan_jax.training import config_check
from facegan_jax.training import r3gan_step
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib


@pytest.mark.parametrize('module, variant', [
    (celeba, None), (celeba, 'test'), (celeba, 'best'), (celeba, 'best_3k'),
    (celeba, 'sngan'), (celeba, 'sngan128'), (lfw_demo, None), (lfw_demo, 'test'),
    (lfw_demo, 'best'), (lfw_demo, 'sngan'), (lfw_demo, 'sngan_test'), (toy2x2, None),
    (celeba, 'stylegan2'), (celeba, 'stylegan2_128'), (lfw_demo, 'stylegan2'), (ffhq, None),
    (ffhq, 'stylegan2'), (ffhq, 'stylegan2_1024'), (ffhq, 'paper512'), (ffhq, 'paper1024'),
    (ffhq, 'r3gan64'), (ffhq, 'r3gan256'), (celeba, 'r3gan'), (lfw_demo, 'r3gan'),
    (lfw_demo, 'r3gan_test'), (celeba, 'stylegan2_ada_3k'), (celeba, 'stylegan2_attributes'),
    (lfw_demo, 'ada'), (lfw_demo, 'stylegan2_ada'), (ffhq, 'ada'), (ffhq, 'ada_1k'),
    (lfw_demo, 'faces_or_not')])
def test_every_variant_is_a_valid_config(module, variant):
  trainer_lib.make_trainer(module.get_config(variant))


def test_best_variants_turn_on_what_they_document():
  demo = lfw_demo.get_config('best')
  assert demo.augment.policy == 'color,translation,cutout' and demo.ema.halflife_images > 0
  subset = celeba.get_config('best_3k')
  assert subset.data.max_examples == 3000 and subset.augment.policy
  full = celeba.get_config('best')
  assert full.ema.halflife_images > 0 and not full.augment.policy


@pytest.mark.parametrize('module', [celeba, ffhq, lfw_demo, toy2x2])
def test_unknown_variants_are_refused(module):
  with pytest.raises(ValueError, match='has no variant'):
    module.get_config('fastest')


def field_names(config, prefix=''):
  names = set()
  for name, value in config.items():
    if hasattr(value, 'items'):
      names |= field_names(value, f'{prefix}{name}.')
    else:
      names.add(prefix + name)
  return names


@pytest.mark.parametrize('module, variant', [
    (celeba, None), (celeba, 'test'), (celeba, 'best_3k'), (celeba, 'sngan'),
    (celeba, 'stylegan2'), (lfw_demo, 'best'), (lfw_demo, 'sngan'), (lfw_demo, 'stylegan2'),
    (toy2x2, None), (ffhq, None), (ffhq, 'r3gan256'), (lfw_demo, 'r3gan_test'), (ffhq, 'ada_5k'),
    (celeba, 'stylegan2_ada_3k'), (lfw_demo, 'stylegan2_ada')])
def test_configs_override_the_defaults_and_add_no_field(module, variant):
  assert field_names(module.get_config(variant)) == field_names(default.get_config())
def test_sngan_variants_are_mimicrys_recipe():
  for config, resolution in ((celeba.get_config('sngan'), 64),
                             (celeba.get_config('sngan128'), 128)):
    assert (config.model.name, config.model.resolution, config.model.latent_dim,
            config.model.g_width, config.model.d_width) == ('sngan', resolution, 128, 1024, 1024)
    assert (config.loss.discriminator, config.loss.generator) == ('hinge', 'hinge')
    assert (config.optim.g_learning_rate, config.optim.d_learning_rate, config.optim.b1,
            config.optim.b2, config.optim.schedule, config.optim.decay_steps) == (
                2e-4, 2e-4, 0.0, 0.9, 'linear', 100_000)
    assert (config.train.batch_size, config.train.d_steps, config.train.num_steps,
            config.train.fresh_generator_pass) == (64, 5, 100_000, True)
    assert (config.data.split, config.data.crop, config.data.random_flip) == ('all', 178, False)
def test_stylegan2_variants_follow_the_reference_tables():
  paper256 = ffhq.get_config()
  assert (paper256.model.resolution, paper256.model.channel_base, paper256.model.mapping_layers,
          paper256.model.mbstd_group_size, paper256.train.batch_size) == (256, 16384, 8, 8, 64)
  assert (paper256.loss.r1_gamma, paper256.ema.halflife_images) == (1.0, 20_000.0)
  assert paper256.train.num_steps * 64 == 25_000_000
  stylegan2 = ffhq.get_config('stylegan2')
  assert (stylegan2.model.channel_base, stylegan2.optim.g_learning_rate,
          stylegan2.loss.r1_gamma) == (32768, 0.002, 10.0)
  # The published FFHQ-1024 network's shapes (tests/test_stylegan2.py counts them).
  for variant, resolution, batch, group, gamma in (
      ('stylegan2_1024', 1024, 32, 4, 10.0), ('paper512', 512, 64, 8, 0.5),
      ('paper1024', 1024, 32, 4, 2.0)):
    config = ffhq.get_config(variant)
    assert (config.model.resolution, config.model.channel_base, config.model.mapping_layers,
            config.train.batch_size, config.model.mbstd_group_size, config.loss.r1_gamma) == (
                resolution, 32768, 8, batch, group, gamma)
  celeba64 = celeba.get_config('stylegan2')
  assert celeba64.model.resolution == 64 and celeba64.loss.r1_gamma == pytest.approx(0.0256)
  celeba128 = celeba.get_config('stylegan2_128')
  assert celeba128.model.resolution == 128 and celeba128.loss.r1_gamma == pytest.approx(0.1024)
  # stylegan2-ada-pytorch's 'auto' row on one GPU at 64 and 128: batch 32, groups of 4, half
  # the widths (channel_base 16384), 2 mapping layers, Adam(0.0025), EMA 10 kimg ramped over 5%.
  for auto in (celeba64, celeba128):
    assert (auto.train.batch_size, auto.model.mbstd_group_size, auto.model.channel_base,
            auto.model.channel_max, auto.model.mapping_layers, auto.model.latent_dim,
            auto.model.w_dim) == (32, 4, 16384, 512, 2, 512, 512)
    assert (auto.optim.g_learning_rate, auto.optim.d_learning_rate) == (0.0025, 0.0025)
    assert (auto.ema.halflife_images, auto.ema.rampup) == (10_000.0, 0.05)
    assert auto.train.generator_first and auto.model.style_mixing_prob == 0.9
  for config in (paper256, stylegan2, celeba64):
    assert (config.loss.r1_every, config.loss.pl_every, config.loss.pl_weight) == (16, 4, 2.0)
    assert (config.optim.b1, config.optim.b2) == (0.0, 0.99)


def test_the_stylegan2_demo_is_nvidias_cifar_configuration_and_its_test_variant_the_rest():
  # stylegan2-ada-pytorch's --cfg=cifar: no path length and no style mixing at 32x32; the tests'
  # variant keeps both, so that they are covered.
  for variant in ('stylegan2', 'stylegan2_ada'):
    demo = lfw_demo.get_config(variant)
    assert (demo.loss.pl_weight, demo.model.style_mixing_prob, demo.loss.r1_every) == (0, 0, 16)
    assert demo.model.channel_max == 32 and demo.model.resolution == 32
  for variant in ('stylegan2_test', 'stylegan2_ada_test'):
    small = lfw_demo.get_config(variant)
    assert (small.loss.pl_weight, small.model.style_mixing_prob, small.loss.pl_every) == (
        2.0, 0.9, 2)


def test_r3gan_variants_train_with_r3gans_step_and_schedules():
  for config in (ffhq.get_config('r3gan64'), ffhq.get_config('r3gan256'),
                 celeba.get_config('r3gan'), lfw_demo.get_config('r3gan'),
                 lfw_demo.get_config('r3gan_test')):
    config_check.check(config, data=False)
    trainer = trainer_lib.make_trainer(config)
    assert step_lib.step_function(trainer) is r3gan_step.train_step
    assert trainer.real_batches == 2 and trainer.ema_decay > 0
    assert (config.model.name, config.optim.b1, config.loss.r1_every) == ('r3gan', 0.0, 1)
  # The paper's presets: FFHQ-64's gamma 2 -> 0.2, FFHQ-256's 150 -> 15, over 20M images.
  for variant, resolution, gamma in (('r3gan64', 64, (2.0, 0.2)),
                                     ('r3gan256', 256, (150.0, 15.0))):
    config = ffhq.get_config(variant)
    assert (config.model.resolution, config.loss.r1_gamma, config.r3gan.final_gamma) == (
        resolution, *gamma)
  assert celeba.get_config('r3gan').model == ffhq.get_config('r3gan64').model
  # The demo's schedules end with the run; the test variant's after its first 16 images.
  demo = lfw_demo.get_config('r3gan')
  assert demo.r3gan.schedule_images == demo.train.num_steps * demo.train.batch_size
  small = lfw_demo.get_config('r3gan_test')
  assert small.r3gan.schedule_images == 16 and small.train.num_steps == 2
  # The demo draws faces without R3GAN's augment pipe; the test variant keeps it, to cover it.
  assert (demo.augment.pipe, small.augment.pipe) == ('', 'bgc')
