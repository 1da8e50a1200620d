"""Every config file and variant builds a valid trainer; variants turn on what they document."""

import pytest

from configs import celeba
from configs import ffhq
from configs import lfw_demo
from configs import toy2x2
from facegan_jax import train


@pytest.mark.parametrize('module, variant', [
    (celeba, None), (celeba, 'test'), (celeba, 'best'), (celeba, 'best_3k'),
    (celeba, 'stylegan2'), (celeba, 'stylegan2_128'), (lfw_demo, None), (lfw_demo, 'test'),
    (lfw_demo, 'best'), (lfw_demo, 'stylegan2'), (toy2x2, None), (ffhq, None),
    (ffhq, 'stylegan2')])
def test_every_variant_is_a_valid_config(module, variant):
  train.make_trainer(module.get_config(variant))


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


def test_stylegan2_variants_follow_the_reference_tables():
  paper256 = ffhq.get_config()
  assert (paper256.model.resolution, paper256.model.channel_base, paper256.model.mapping_layers,
          paper256.model.mbstd_group_size, paper256.train.batch_size) == (256, 16384, 8, 8, 64)
  assert (paper256.loss.r1_gamma, paper256.ema.halflife_images) == (1.0, 20_000.0)
  assert paper256.train.num_steps * 64 == 25_000_000
  stylegan2 = ffhq.get_config('stylegan2')
  assert (stylegan2.model.channel_base, stylegan2.optim.g_learning_rate,
          stylegan2.loss.r1_gamma) == (32768, 0.002, 10.0)
  celeba64 = celeba.get_config('stylegan2')
  assert celeba64.model.resolution == 64 and celeba64.loss.r1_gamma == pytest.approx(0.0256)
  assert celeba.get_config('stylegan2_128').model.resolution == 128
  for config in (paper256, stylegan2, celeba64):
    assert (config.loss.r1_every, config.loss.pl_every, config.loss.pl_weight) == (16, 4, 2.0)
    assert (config.optim.b1, config.optim.b2) == (0.0, 0.99)
