"""ADA in training (training/ada.py, the augment pipe in training/step.py): its config fields,
p and the controller's sums in the train state, moved inside the jitted step over the global
batch, and runs without the pipe unchanged. The pipe and the controller themselves are tested
against NVIDIA's numbers in tests/test_augment_pipe.py and tests/test_ada.py; SIGKILL resume with
p mid-adaptation in tests/test_checkpointing.py."""


import flax
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import celeba
from configs import ffhq
from configs import lfw_demo
from configs import toy2x2
from facegan_jax.runs import checkpointing
from facegan_jax.system.errors import UserError
from facegan_jax.training import config_check
from facegan_jax.training import state as state_lib
from facegan_jax.training import trainer as trainer_lib
from tests.helpers import steps_on_meshes


@pytest.mark.parametrize('changes, message', [
    (dict(pipe='bgcx'), "config.augment.pipe='bgcx' is unknown"),
    (dict(pipe='bgc', policy='color'), "set policy='' or pipe=''"),
    (dict(pipe_settings='rotate=0'), 'needs a pipe'),
    (dict(pipe='bgc', pipe_settings='rotate=x'), "has 'rotate=x'"),
    (dict(pipe='bgc', pipe_settings='spin=1'), "has 'spin=1'"),
    (dict(pipe='bgc', pipe_settings='xint_max=-1'), "has 'xint_max=-1'"),
    (dict(pipe='bgc', p_mode='cosine'), 'config.augment.cosine_images=0.0'),
    (dict(pipe='bgc', p_mode='sometimes'), "config.augment.p_mode='sometimes'"),
    (dict(pipe='bgc', ada_interval=0), 'config.augment.ada_interval=0'),
])
def test_bad_ada_fields_are_named_in_one_line(changes, message):
  config = lfw_demo.get_config('test')
  config.augment.update(**changes)
  with pytest.raises(UserError, match='^[^\n]*$') as error:
    config_check.check(config)
  assert message in str(error.value)


def test_the_trainer_holds_the_preset_changed_by_pipe_settings():
  config = lfw_demo.get_config('ada')
  config.augment.pipe_settings = 'rotate=0, xint_max=0.25'
  trainer = trainer_lib.make_trainer(config)
  assert (trainer.augment_pipe.xflip, trainer.augment_pipe.rotate) == (1.0, 0.0)
  assert trainer.augment_pipe.xint_max == 0.25 and trainer.augment_pipe.hue == 1.0
  assert (trainer.ada_schedule.mode, trainer.ada_schedule.target) == ('adaptive', 0.6)
  assert trainer_lib.make_trainer(lfw_demo.get_config('test')).augment_pipe is None


def test_ada_variants_are_their_base_recipes_with_nvidias_ada():
  for variant, faces in (('ada', 0), ('ada_1k', 1000), ('ada_2k', 2000), ('ada_5k', 5000),
                         ('ada_10k', 10_000)):
    config = ffhq.get_config(variant)
    assert (config.data.max_examples, config.augment.pipe, config.augment.p_mode) == (
        faces, 'bgc', 'adaptive')
    assert (config.augment.ada_target, config.augment.ada_interval, config.augment.ada_kimg,
            config.augment.p) == (0.6, 4, 500.0, 0.0)
    config.update(data=ffhq.get_config().data, augment=ffhq.get_config().augment)
    assert config == ffhq.get_config()  # paper256 otherwise
  subset = celeba.get_config('stylegan2_ada_3k')
  assert (subset.data.max_examples, subset.augment.pipe, subset.model.name) == (
      3000, 'bgc', 'stylegan2')
  for variant, base in (('ada', None), ('stylegan2_ada', 'stylegan2')):
    demo = lfw_demo.get_config(variant)
    assert demo.augment.pipe == 'bgc' and demo.model == lfw_demo.get_config(base).model


def test_a_checkpoint_from_before_ada_keeps_its_path_length_mean(tmp_path):
  """A checkpoint with pl_mean but none of the ADA fields restores pl_mean, and ADA's initial
  values (which a run without them never changed)."""
  trainer = trainer_lib.make_trainer(toy2x2.get_config())
  state = state_lib.create_train_state(trainer, jax.random.key(0), (2, 2, 1))
  saved = dict(flax.serialization.to_state_dict(state.replace(pl_mean=jnp.float32(5))))
  for field in ('ada_p', 'ada_sign_sum', 'ada_count'):
    del saved[field]
  manager = checkpointing.make_manager(str(tmp_path))
  manager.save(0, args=ocp.args.Composite(state=ocp.args.PyTreeSave(saved)))
  manager.wait_until_finished()
  template = state.replace(ada_p=jnp.float32(0.25), ada_count=jnp.float32(3))
  restored = checkpointing.restore_state(manager, 0, template)
  assert (float(restored.pl_mean), float(restored.ada_p), float(restored.ada_count)) == (5, 0.25, 3)


def expected_p(rt, config):
  """p before each step, from NVIDIA's rule fed the steps' mean signs `rt` (each step one D
  update of batch_size reals): float32, as the state."""
  augment, batch = config.augment, config.train.batch_size
  p, trajectory = np.float32(augment.p), []
  for step, _ in enumerate(rt):
    trajectory.append(p)
    if (step + 1) % augment.ada_interval == 0:
      r_t = np.mean(rt[step + 1 - augment.ada_interval:step + 1])
      move = np.float32(batch * augment.ada_interval / (augment.ada_kimg * 1000))
      p = np.maximum(p + np.sign(r_t - augment.ada_target) * move, np.float32(0))
  return np.array(trajectory)


@pytest.mark.slow
def test_one_two_and_eight_devices_move_p_alike_as_the_controller_says(tmp_path):
  """r_t is reduced over the global batch: 2 devices (4 reals each) and 8 (1 each) move p as 1
  does, and p follows NVIDIA's rule fed the logged mean signs."""
  runs = steps_on_meshes.train_on_meshes(tmp_path, 6, 'ada_test')
  steps_on_meshes.assert_meshes_agree(runs)
  p, rt = runs['losses_1'][:, 4], runs['losses_1'][:, 5]
  np.testing.assert_array_equal(p, expected_p(rt, lfw_demo.get_config('ada_test')))
  assert p[-1] > 0  # D is sure of the reals from the start: p rises


@pytest.mark.slow
def test_bfloat16_ada_runs_are_finite_and_rerun_bit_identically():
  config = lfw_demo.get_config('ada_test')
  config.train.compute_dtype = 'bfloat16'
  runs = [steps_on_meshes.run(config, 1, 4) for _ in range(2)]
  np.testing.assert_array_equal(runs[0][0], runs[1][0])
  np.testing.assert_array_equal(runs[0][1], runs[1][1])
  losses, params, _ = runs[0]
  assert np.isfinite(losses).all() and np.isfinite(params).all()
  np.testing.assert_array_equal(losses[:, 4], expected_p(losses[:, 5], config))
  assert losses[-1, 4] > 0


# The parameters of lfw_demo.py:test after 3 steps under the tests' XLA settings, written at
# commit 8ae434f (before ADA reached the train step; jax 0.10.2) on a 2-core x86 CPU without
# AVX-512. Other vector units and thread counts sum in other orders, so they are compared to
# float32 round-off: any change to what the step computes moves them far more after 3 Adam steps.
# Rewrite it if an upgrade of jax or XLA moves the numbers, on a commit known to train as before.
PRE_ADA_PARAMS = 'tests/data/dcgan_test_3steps_pre_ada.npy'


@pytest.mark.slow
def test_runs_without_the_pipe_train_as_before_ada():
  _, params, _ = steps_on_meshes.run(lfw_demo.get_config('test'), 1, 3)
  np.testing.assert_allclose(params, np.load(PRE_ADA_PARAMS), rtol=1e-5, atol=1e-6)
