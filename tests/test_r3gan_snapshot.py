"""R3GAN's network snapshots (brownvc/R3GAN's network-snapshot-*.pkl) through the pickle reader:
config.model read from the file's layers, the import command's run whose EMA generator gives
the reference's images (snap/G_ema_out of ../shared/fixtures/r3gan/), sampled and fine-tuned
in processes where torch cannot be imported, config.init.from_pkl, and one-line refusals."""

import hashlib
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import ffhq
from facegan_jax import models
from facegan_jax.models import r3gan
from facegan_jax.pretrained import convert_r3gan
from facegan_jax.pretrained import convert_stylegan2
from facegan_jax.pretrained import nvidia_pickle
from facegan_jax.sampling import generation
from facegan_jax.system.errors import UserError
from facegan_jax.training import trainer as trainer_lib
from tests.helpers import multidevice
from tests.helpers import reference_arrays
from tests.test_import_stylegan2 import faces
from tests.test_import_stylegan2 import import_command
from tests.test_import_stylegan2 import run_without_torch
from tests.test_nvidia_pickle import module
from tests.test_nvidia_pickle import path
from tests.test_nvidia_pickle import refusal
from tests.test_stylegan2_train import WITHOUT_TORCH

SNAPSHOT = path('r3gan_small_snapshot')
# The fixture's tiny networks (README section 4): G's stages from 4x4 up.
FIELDS = dict(name='r3gan', resolution=32, channels=3, latent_dim=64, expansion=2, c_dim=0,
              bf16_stages=0, stage_widths='32,32,24,16', stage_cardinalities='4,8,3,2',
              stage_blocks='1,2,1,2')
# A step on a small batch, so that the tests compile and run in less time.
SMALL_RUN = ['--config.train.batch_size=4', '--config.samples.count=4',
             '--config.checkpoint.every=1']


def test_the_model_is_read_from_the_snapshots_layers():
  assert convert_r3gan.model_fields(nvidia_pickle.read(SNAPSHOT)) == FIELDS
  config = ffhq.get_config('r3gan64')
  config.model.update(FIELDS)
  generator, discriminator = models.build_models(config.model)
  assert (generator.widths, generator.cardinalities, generator.blocks) == (
      (32, 32, 24, 16), (4, 8, 3, 2), (1, 2, 1, 2))
  assert (discriminator.widths, discriminator.cardinalities, discriminator.blocks) == (
      (16, 24, 32, 32), (2, 3, 8, 4), (2, 1, 2, 1))


def stages(network):
  return [module for name, module in network.modules() if name.count('.') == 2
          and name.startswith('Model.MainLayers.')]


def test_bfloat16_stages_labels_and_mismatched_networks_are_read_or_refused():
  networks = nvidia_pickle.read(SNAPSHOT)
  generator, discriminator = networks.networks['G'], networks.networks['D']
  # The reference's FP16Stages [-1, -2] of G and [0, 1] of D: bf16_stages 2.
  for stage in stages(generator)[2:] + stages(discriminator)[:2]:
    stage.attributes['DataType'] = 'torch.bfloat16'
  assert convert_r3gan.model_fields(networks)['bf16_stages'] == 2
  stages(discriminator)[1].attributes['DataType'] = 'torch.float32'
  assert refusal(convert_r3gan.model_fields, networks) == (
      'D and G compute different numbers of stages in bfloat16; facegan_jax\'s R3GAN has one '
      'config.model.bf16_stages for both.')
  stages(generator)[0].attributes['DataType'] = 'torch.bfloat16'
  assert refusal(convert_r3gan.model_fields, networks) == (
      'G\'s bfloat16 stages are not its last ones; facegan_jax\'s R3GAN '
      '(config.model.bf16_stages) computes only those in bfloat16.')
  networks = nvidia_pickle.read(SNAPSHOT)
  # A label embedding (torch.nn.Linear) of 64 features in G: c_dim 4, as the reference's.
  generator = networks.networks['G']
  generator.attributes['c_dim'] = 4
  generator.children['Model'].children['EmbeddingLayer'] = module(
      'torch.nn.modules.linear.Linear', in_features=4, out_features=64)
  del networks.networks['D']
  assert convert_r3gan.model_fields(networks)['c_dim'] == 4
  generator.children['Model'].children['EmbeddingLayer'].attributes['out_features'] = 32
  assert refusal(convert_r3gan.model_fields, networks) == (
      'G\'s label embedding has 32 features for c_dim=4; facegan_jax\'s R3GAN embeds labels in '
      '64 (the reference\'s default).')
  networks = nvidia_pickle.read(SNAPSHOT)
  del stages(networks.networks['D'])[0].children['Layers'].children['1']
  assert refusal(convert_r3gan.model_fields, networks) == (
      'D\'s stages (widths (16, 24, 32, 32), cardinalities (2, 3, 8, 4), blocks (1, 1, 2, 1)) '
      'are not G\'s reversed; facegan_jax\'s R3GAN builds D as G\'s stages reversed.')


def test_per_stage_fields_that_do_not_fit_are_one_line():
  config = ffhq.get_config('r3gan64')
  config.model.update(FIELDS)
  for field, value in (('stage_widths', '32,32,24'), ('stage_blocks', '1,2,x,2'),
                       ('stage_cardinalities', '4,8,3,0')):
    model = config.model.copy_and_resolve_references()
    model[field] = value
    with pytest.raises(UserError) as error:
      models.build_models(model)
    assert str(error.value) == (
        f'config.model.{field}={value!r} is not 4 positive integers, one per stage from 4x4 to '
        "32x32; give them comma-separated (e.g. '2,2,2,2'), or '' to derive them.")
  # Derived from a group width wider than a stage's channels (16 x 2 at 32x32 here).
  derived = ffhq.get_config('r3gan64').model
  derived.update(resolution=32, channel_base=512, channel_max=32, group_width=64)
  with pytest.raises(UserError, match=r'^config.model.group_width=64 does not divide the 16 x 2 '
                     'channels of a stage'):
    models.build_models(derived)
  config.model.stage_cardinalities = '4,8,5,2'
  with pytest.raises(UserError, match=r"^config.model.stage_cardinalities='4,8,5,2' does not "
                     r'divide the 24 x 2 channels of a stage into equal groups'):
    models.build_models(config.model)


@pytest.mark.slow
def test_a_snapshot_becomes_a_run_to_sample_and_fine_tune_with_the_references_images(tmp_path):
  workdir = tmp_path / 'run'
  data = [f'--config.data.path={faces(tmp_path / "faces")}',
          f'--config.data.cache_dir={tmp_path / "cache"}', *SMALL_RUN]
  command = import_command(SNAPSHOT, workdir, *data)
  # The model is the file's; the training recipe R3GAN's FFHQ-64 preset.
  assert command[:4] == ['python', '-m', 'facegan_jax.main', '--config=configs/ffhq.py:r3gan64']
  assert sorted(command[4:]) == sorted(data + [
      '--config.model.resolution=32', '--config.model.bf16_stages=0',
      '--config.model.stage_widths=32,32,24,16', '--config.model.stage_cardinalities=4,8,3,2',
      '--config.model.stage_blocks=1,2,1,2', f'--workdir={workdir}'])

  expected = reference_arrays.load('nvidia_pkl/expected_outputs.npz')
  restored = generation.RestoredGenerator(str(workdir))
  images = generation.generate(restored.generator, restored.variables,
                               jnp.asarray(expected['r3gan_small_snapshot/z']))
  np.testing.assert_allclose(images, expected['r3gan_small_snapshot/G_ema_img'].transpose(
      0, 2, 3, 1), atol=1e-5, rtol=1e-5)

  sampled = run_without_torch('sample', f'--workdir={workdir}', '--num=4',
                              f'--out={tmp_path / "grid.png"}')
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  assert Image.open(tmp_path / 'grid.png').size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)
  trained = multidevice.run_python(
      ['-c', WITHOUT_TORCH, *command[2:], '--config.train.num_steps=1'])
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert 'Resumed from the checkpoint of step 0' in trained.stderr
  assert (workdir / 'samples' / 'step_0000001.png').exists()


def test_a_new_run_starts_from_the_snapshots_networks(tmp_path):
  config = ffhq.get_config('r3gan64')
  config.model.update(FIELDS)
  config.init.from_pkl = SNAPSHOT
  networks = convert_stylegan2.read_initial_networks(config)
  snapshot_bytes = pathlib.Path(SNAPSHOT).read_bytes()
  assert config.init.from_pkl_sha256 == hashlib.sha256(snapshot_bytes).hexdigest()
  # The snapshot's G and G_ema are loopA/G1 of the fixture, its D loopA/D1 (a run from them:
  # loop.train_and_evaluate, as the imported run's training step above).
  fixture = reference_arrays.load('r3gan_small.npz')
  generator, discriminator = models.build_models(config.model)
  for ours, prefix, network in ((networks.generator['params'], 'loopA/G1/', generator),
                                (networks.ema_params, 'loopA/G1/', generator),
                                (networks.discriminator['params'], 'loopA/D1/', discriminator)):
    jax.tree.map(np.testing.assert_array_equal, ours,
                 r3gan.params_from_reference(fixture, network, prefix))
  # A new run's step 0 holds them, with fresh Adam states.
  state = convert_stylegan2.initial_state(config, networks)
  jax.tree.map(np.testing.assert_array_equal, state.d_params, networks.discriminator['params'])
  fresh = trainer_lib.make_trainer(config).d_optimizer.init(networks.discriminator['params'])
  jax.tree.map(np.testing.assert_array_equal, state.d_opt_state, fresh)


def test_a_model_that_is_not_the_snapshots_is_refused_before_anything_is_written(tmp_path):
  workdir = tmp_path / 'run'
  run = lambda *args: multidevice.run_python([
      '-m', 'facegan_jax.main', *args, f'--config.init.from_pkl={SNAPSHOT}',
      f'--workdir={workdir}'])
  for args, message in (
      (['--config=configs/ffhq.py:r3gan64'], f'config.model builds resolution=64, but '
       f'{SNAPSHOT} holds a network with 32; set --config.model.resolution=32.'),
      (['--config=configs/ffhq.py:r3gan64', '--config.model.resolution=32'],
       f"config.model builds stage_widths='768,768,768,768', but {SNAPSHOT} holds a network "
       "with '32,32,24,16'; set --config.model.stage_widths='32,32,24,16'."),
      (['--config=configs/ffhq.py:stylegan2'], 'this is an R3GAN snapshot (brownvc/R3GAN), not '
       "a StyleGAN2: use an R3GAN config (config.model.name='r3gan'), or import it without "
       '--config.')):
    result = run(*args)
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].endswith(message)
  assert not workdir.exists()
