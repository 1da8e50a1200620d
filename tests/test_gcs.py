"""gs:// workdirs and data against a real GCS server: fake-gcs-server, one per module on 127.0.0.1
(in memory), with every client pointed at it by environment variables (tests/helpers/
gcs_emulator.py). Training, SIGKILL and resume, the lock, `sample`, `evaluate`, two processes,
image folders and the one-line faults all run on the same code as a real bucket."""

import copy
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile

import jax
import numpy as np
import pytest
from PIL import Image
from tensorboardX.proto import event_pb2

from configs import toy2x2
from facegan_jax.data import image_sources
from facegan_jax.data import images as images_lib
from facegan_jax.runs import checkpointing
from facegan_jax.runs import storage
from facegan_jax.runs import workdir_lock
from facegan_jax.sampling import generation
from facegan_jax.system import compile_cache
from facegan_jax.system import traced_programs
from facegan_jax.system.errors import UserError
from facegan_jax.training import loop
from facegan_jax.training import state as state_lib
from facegan_jax.training import trainer as trainer_lib
from tests import test_checkpointing
from tests import test_compile_cache
from tests.conftest import TINY
from tests.helpers import gcs_emulator
from tests.helpers import multidevice
from tests.test_multihost import launch

BUCKET = 'runs'
TOY = ['--config=configs/toy2x2.py', '--config.train.log_every=10', '--config.checkpoint.every=20']


@pytest.fixture(scope='module')
def emulator():
  """The emulator with the bucket BUCKET, this process's environment pointed at it (so are the
  subprocesses, which inherit it)."""
  server = gcs_emulator.Emulator()
  try:
    server.create_bucket(BUCKET)
    with pytest.MonkeyPatch.context() as monkeypatch:
      gcs_emulator.set_environment(monkeypatch, server.url)
      storage.client.cache_clear()
      yield server
  finally:
    storage.client.cache_clear()
    server.stop()


def url(*parts):
  return '/'.join([f'gs://{BUCKET}', *parts])


def main(*flags, **kwargs):
  return multidevice.run_python(['-m', 'facegan_jax.main', *TOY, *flags], **kwargs)


def state_template():
  config = toy2x2.get_config()
  return state_lib.create_train_state(trainer_lib.make_trainer(config), jax.random.key(0), (2, 2, 1))


def restored_state(workdir, step):
  manager = checkpointing.make_manager(workdir, create=False)
  return checkpointing.restore_state(manager, step, state_template())


@pytest.fixture(scope='module')
def killed_and_resumed(emulator):
  """A run killed with SIGKILL after its second checkpoint in the bucket; a second run started
  on its lock; then the lock deleted (the documented takeover) and the run resumed to 20 steps
  after the kill. {'workdir', 'killed_at', 'steps', 'refused', 'unchanged' (by the refused
  run), 'resumed', 'pid' (of the killed run)}."""
  workdir = url('killed')
  process = subprocess.Popen(
      [sys.executable, '-m', 'facegan_jax.main', *TOY, '--config.train.num_steps=1000000',
       f'--workdir={workdir}'], cwd=multidevice.ROOT, env=multidevice.environment(),
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  committed = storage.path(f'{workdir}/checkpoints/40/commit_success.txt')
  while not committed.exists():
    assert time.time() < deadline and process.poll() is None, 'no checkpoint was written'
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = max(checkpointing.make_manager(workdir, create=False).all_steps())
  before = storage.list_objects(workdir)
  refused = main(f'--workdir={workdir}')
  unchanged = storage.list_objects(workdir) == before
  storage.blob(f'{workdir}/{workdir_lock.LOCK_NAME}').delete()
  steps = killed_at + 20
  resumed = main(f'--config.train.num_steps={steps}', f'--workdir={workdir}')
  return {'workdir': workdir, 'killed_at': killed_at, 'steps': steps, 'refused': refused,
          'unchanged': unchanged, 'resumed': resumed, 'pid': process.pid}


@pytest.fixture(scope='module')
def whole(killed_and_resumed, tiny_weights, tmp_path_factory):
  """The same run uninterrupted, in the bucket; with eval settings for `evaluate` (they do not
  change the training)."""
  workdir = url('whole')
  stats = tmp_path_factory.mktemp('stats')
  result = main(f'--config.train.num_steps={killed_and_resumed["steps"]}',
                f'--config.eval.inception_weights={tiny_weights}',
                f'--config.eval.inception_width_multiplier={TINY}',
                f'--config.eval.stats_dir={stats}', '--config.eval.batch_size=8',
                '--config.eval.kid_subsets=2', '--config.eval.kid_subset_size=8',
                f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


def test_a_second_run_on_a_locked_gcs_workdir_is_refused_with_the_owner(killed_and_resumed):
  refused = killed_and_resumed['refused']
  assert refused.returncode == 1 and 'Traceback' not in refused.stderr
  assert killed_and_resumed['unchanged']  # not an object of the workdir was written
  line = refused.stderr.strip().splitlines()[-1]
  lock = f'{killed_and_resumed["workdir"]}/.lock'
  assert line.startswith(f'error: workdir {killed_and_resumed["workdir"]} is in use by another '
                         f'run (host ')
  assert f', pid {killed_and_resumed["pid"]}, last heartbeat ' in line
  assert line.endswith(f' s ago); wait for it to finish, stop it, or choose another --workdir. '
                       f'If that run is gone, delete its lock (gcloud storage rm {lock}) or '
                       f'start again once its heartbeat is over 600 s old.')


def test_resume_after_sigkill_in_gcs_is_bit_identical_to_an_uninterrupted_run(
    killed_and_resumed, whole):
  resumed, steps = killed_and_resumed['resumed'], killed_and_resumed['steps']
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f'from step {killed_and_resumed["killed_at"]} to {steps}' in resumed.stderr
  test_checkpointing.assert_identical(restored_state(killed_and_resumed['workdir'], steps),
                                      restored_state(whole, steps))
  assert int(restored_state(whole, steps).step) == steps
  assert not storage.path(f'{whole}/{workdir_lock.LOCK_NAME}').exists()  # released at the end


def read_event_scalars(data: bytes) -> dict:
  """{tag: {step: value}} of a TensorBoard events file's bytes (TFRecord framing)."""
  scalars, offset = {}, 0
  while offset < len(data):
    (length,) = struct.unpack('<Q', data[offset:offset + 8])
    event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
    offset += 12 + length + 4
    for value in event.summary.value:
      if value.HasField('simple_value'):
        scalars.setdefault(value.tag, {})[event.step] = value.simple_value
  return scalars


def test_the_run_writes_config_metrics_samples_and_events_to_the_bucket(killed_and_resumed,
                                                                         whole):
  steps = killed_and_resumed['steps']
  objects = storage.list_objects(whole)
  config = json.loads(storage.read_bytes(f'{whole}/config.json'))
  assert config['train']['num_steps'] == steps
  lines = [json.loads(line) for line in storage.path(f'{whole}/metrics.jsonl').read_text(
  ).splitlines()]
  assert [line['step'] for line in lines] == list(range(10, steps + 1, 10))
  grid = np.asarray(Image.open(io.BytesIO(storage.read_bytes(
      f'{whole}/samples/step_{steps:07d}.png'))))
  assert grid.shape == (8 * 4 + 2, 8 * 4 + 2)  # 64 samples of 2x2, 2px borders
  events = [name for name in objects if name.startswith('events.out.tfevents.')]
  assert len(events) == 1
  scalars = read_event_scalars(storage.read_bytes(f'{whole}/{events[0]}'))
  assert scalars['d_loss'] == pytest.approx({line['step']: line['d_loss'] for line in lines})


def test_sample_reads_the_bucket_and_writes_its_grid_there(whole):
  out = url('sampled', 'grid.png')
  result = multidevice.run_python(['-m', 'facegan_jax.sample', f'--workdir={whole}', '--num=6',
                                   '--seed=3', f'--out={out}',
                                   f'--images_dir={url("sampled", "faces")}'])
  assert result.returncode == 0, result.stderr[-3000:]
  restored = generation.RestoredGenerator(whole)
  expected = images_lib.make_grid(restored.images(restored.seed_latents(3, 6)))
  written = np.asarray(Image.open(io.BytesIO(storage.read_bytes(out))))
  np.testing.assert_array_equal(written, expected[..., 0])
  assert sorted(storage.list_objects(url('sampled', 'faces'))) == [f'{i:04d}.png' for i in range(6)]


def test_evaluate_writes_its_result_to_the_bucket(killed_and_resumed, whole, tiny_weights):
  result = multidevice.run_python(['-m', 'facegan_jax.evaluate', f'--workdir={whole}',
                                   '--num_samples=16'])
  assert result.returncode == 0, result.stderr[-3000:]
  steps = killed_and_resumed['steps']
  written = json.loads(storage.read_bytes(f'{whole}/eval/step_{steps:07d}-clean-n16.json'))
  assert written['step'] == steps and written['num_generated'] == 16
  assert f'step {steps}: FID {written["fid"]:.4f}' in result.stdout


def test_a_config_change_is_refused_on_a_gcs_workdir_and_changes_nothing(whole):
  before = storage.list_objects(whole)
  config = toy2x2.get_config()
  config.seed = 3
  with pytest.raises(UserError, match=rf'cannot resume the run in {whole}: the config differs '
                     r'in 1 field\(s\) that change training: seed: 0 -> 3\.'):
    loop.train_and_evaluate(config, whole)
  assert storage.list_objects(whole) == before


def test_a_damaged_checkpoint_in_gcs_names_the_command_that_moves_it_aside(killed_and_resumed):
  workdir = killed_and_resumed['workdir']
  steps = sorted(checkpointing.make_manager(workdir, create=False).all_steps())
  prefix = f'checkpoints/{steps[-1]}/state/'
  for name in storage.list_objects(workdir):  # the arrays and their metadata
    if name.startswith(prefix) and not name.endswith('commit_success.txt'):
      storage.blob(f'{workdir}/{name}').delete()
  before = storage.list_objects(workdir)
  config = toy2x2.get_config()
  config.train.num_steps = killed_and_resumed['steps'] + 20
  newest = f'{workdir}/checkpoints/{steps[-1]}'
  with pytest.raises(UserError, match=(
      rf'the latest checkpoint in {newest} cannot be read .*to resume from step {steps[-2]}, '
      rf'move it aside: gcloud storage mv {newest} {newest}\.damaged\. Nothing was changed')):
    loop.train_and_evaluate(config, workdir)
  assert storage.list_objects(workdir) == before


def test_a_checkpoint_that_cannot_be_written_to_gcs_says_what_to_check(whole):
  manager = checkpointing.make_manager(whole, create=False)
  steps = max(manager.all_steps())
  error = checkpointing.write_failed(manager, ConnectionError('connection reset by peer'))
  assert str(error) == (
      f'could not write a checkpoint in {whole}/checkpoints (connection reset by peer); the '
      f'newest checkpoint there, step {steps}, is intact. Check the network and the bucket '
      '(permissions, quota), then run the same command to resume.')


@pytest.mark.slow
def test_two_processes_write_one_checkpoint_to_the_bucket_that_restores_in_one(emulator):
  workdir = url('multihost')
  result = launch(2, '--config=configs/toy2x2.py', '--config.train.num_steps=2',
                  '--config.checkpoint.every=2', f'--workdir={workdir}', devices=1)
  assert result.returncode == 0, result.stderr[-3000:]
  assert checkpointing.make_manager(workdir, create=False).all_steps() == [2]
  restored = generation.RestoredGenerator(workdir)
  assert restored.step == 2
  images = restored.images(restored.seed_latents(0, 8))
  assert images.shape == (8, 2, 2, 1) and images.std() > 0


def write_faces(count, directory_or_url):
  """`count` distinct 6x5 RGB PNGs, in a subfolder for odd ones; the folder source's input."""
  rng = np.random.default_rng(0)
  for index in range(count):
    pixels = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    name = f'{"sub/" if index % 2 else ""}face_{index}.png'
    images_lib.save_png(f'{directory_or_url}/{name}', pixels)


def test_a_folder_in_gcs_gives_the_images_of_the_same_local_folder(emulator, tmp_path):
  local = tmp_path / 'faces'
  (local / 'sub').mkdir(parents=True)
  write_faces(6, str(local))
  write_faces(6, url('faces'))
  configs = []
  for path in (str(local), url('faces')):
    config = toy2x2.get_config()
    config.data.update(source='folder', path=path, crop=0, cache_dir=str(tmp_path / 'cache'))
    configs.append(config)
  from_disk, from_gcs = (image_sources.load_images(config) for config in configs)
  assert from_gcs.shape == (6, 2, 2, 1)
  np.testing.assert_array_equal(from_gcs, from_disk)
  assert len(list((tmp_path / 'cache').glob('folder-*.npy'))) == 2  # each source on local disk
  # Changing an object changes the cache key: the folder is prepared again.
  images_lib.save_png(url('faces', 'face_0.png'), np.zeros((6, 5, 3), np.uint8))
  assert image_sources.load_images(configs[1])[0].max() == 0
  configs[1].data.cache_dir = url('cache')
  with pytest.raises(UserError, match=r"config.data.cache_dir='gs://runs/cache' must be on "
                     'local disk'):
    image_sources.load_images(configs[1])


def test_a_dataset_zip_in_gcs_gives_the_images_and_labels_of_the_same_local_zip(emulator,
                                                                              tmp_path):
  rng = np.random.default_rng(1)
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, 'w') as archive:
    for index in range(4):
      pixels = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
      encoded = io.BytesIO()
      pixels.save(encoded, format='PNG')
      archive.writestr(f'00000/img{index:08d}.png', encoded.getvalue())
    archive.writestr('dataset.json', json.dumps(
        {'labels': [[f'00000/img{index:08d}.png', index % 3] for index in range(4)]}))
  (tmp_path / 'faces.zip').write_bytes(buffer.getvalue())
  storage.write_bytes(url('faces.zip'), buffer.getvalue())
  datasets = []
  for path in (str(tmp_path / 'faces.zip'), url('faces.zip')):
    config = toy2x2.get_config()
    config.data.update(source='zip', path=path, crop=0, cache_dir=str(tmp_path / 'cache'),
                       labels='dataset_json')
    config.model.c_dim = 3
    datasets.append(image_sources.load_dataset(config))
  assert datasets[1].images.shape == (4, 2, 2, 1)
  np.testing.assert_array_equal(datasets[1].images, datasets[0].images)
  np.testing.assert_array_equal(datasets[1].labels, np.eye(3)[[0, 1, 2, 0]])
  config.data.path = url('missing.zip')
  with pytest.raises(UserError, match=r"config.data.path='gs://runs/missing.zip' cannot be read"):
    image_sources.load_dataset(config)


def test_the_cache_of_gcs_data_without_a_cache_dir_is_on_local_disk():
  config = toy2x2.get_config()
  config.data.data_dir = 'gs://bucket/tensorflow_datasets'
  assert image_sources.data_dir(config.data) == 'gs://bucket/tensorflow_datasets'
  cache = image_sources.cache_dir(config.data)
  assert cache.startswith('/') and cache.endswith('.cache/facegan_jax/prepared_images')


def test_the_lock_object_is_created_once_refreshed_released_and_stale_ones_taken_over(
    emulator, monkeypatch):
  workdir = url('locked')
  monkeypatch.setattr(workdir_lock, 'HEARTBEAT_SECONDS', 0.05)
  with workdir_lock.hold(workdir):  # the heartbeat thread refreshes the lock while it is held
    lock_url = f'{workdir}/{workdir_lock.LOCK_NAME}'
    started = json.loads(storage.read_bytes(lock_url))['heartbeat']
    deadline = time.time() + 10
    while json.loads(storage.read_bytes(lock_url))['heartbeat'] == started:
      assert time.time() < deadline, 'the heartbeat was not refreshed'
      time.sleep(0.05)
  assert not storage.path(lock_url).exists()

  first = workdir_lock.ObjectLock(workdir)
  first.acquire()
  holder = json.loads(storage.read_bytes(first.url))
  assert holder['pid'] == os.getpid() and time.time() - holder['heartbeat'] < 60
  with pytest.raises(UserError, match=r'is in use by another run \(host .*, pid \d+, last '
                     r'heartbeat \d+ s ago\)'):
    workdir_lock.ObjectLock(workdir).acquire()
  retried = copy.copy(first)  # a create that succeeded but whose answer was lost: tried again
  retried.generation = None
  retried.acquire()
  assert retried.generation == first.generation
  generation_before = first.generation
  assert first.beat() and first.generation != generation_before
  first.release()
  assert not storage.path(first.url).exists()

  # A lock whose heartbeat stopped STALE_SECONDS ago is taken over; its run, if it comes back,
  # finds that out at its next heartbeat and leaves the new lock alone.
  dead = workdir_lock.ObjectLock(workdir)
  dead.acquire()
  storage.blob(dead.url).upload_from_string(json.dumps(
      {'host': 'gone', 'pid': 1, 'heartbeat': time.time() - workdir_lock.STALE_SECONDS - 1}))
  dead.generation = storage.client().bucket(BUCKET).get_blob('locked/.lock').generation
  taker = workdir_lock.ObjectLock(workdir)
  taker.acquire()
  assert not dead.beat()
  dead.release()
  assert json.loads(storage.read_bytes(taker.url))['heartbeat'] > time.time() - 60
  taker.release()


def test_a_missing_bucket_is_one_line(emulator):
  result = main('--workdir=gs://no-such-bucket/run')
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      'error: bucket gs://no-such-bucket does not exist (--workdir); create it (gcloud storage '
      'buckets create gs://no-such-bucket) or fix the bucket name.')


def test_an_unreachable_endpoint_gives_up_after_the_timeout_naming_the_bucket(emulator,
                                                                              monkeypatch):
  closed = f'http://127.0.0.1:{gcs_emulator.free_port()}'
  monkeypatch.setenv('STORAGE_EMULATOR_HOST', closed)
  monkeypatch.setenv('FACEGAN_GCS_TIMEOUT', '2')
  storage.client.cache_clear()
  start = time.time()
  try:
    with pytest.raises(UserError) as error:
      generation.RestoredGenerator(url('whole'))
  finally:
    storage.client.cache_clear()
  assert time.time() - start < 10
  message = str(error.value)
  assert '\n' not in message
  assert message.startswith(f'cannot reach Google Cloud Storage at {closed} for gs://{BUCKET} '
                            '(--workdir) within 2 s (')
  assert message.endswith('check the network, the bucket name and STORAGE_EMULATOR_HOST if set, '
                          'or raise FACEGAN_GCS_TIMEOUT.')


def test_missing_credentials_and_permissions_are_one_line(emulator, monkeypatch, tmp_path):
  monkeypatch.delenv('STORAGE_EMULATOR_HOST')  # the emulator needs no credentials
  monkeypatch.setenv('GOOGLE_APPLICATION_CREDENTIALS', str(tmp_path / 'missing.json'))
  storage.client.cache_clear()
  try:
    with pytest.raises(UserError, match=r'^no Google Cloud credentials to use gs:// \(File .*'
                       r'missing\.json was not found\.\); on a TPU or GCE VM its service '
                       'account is used, elsewhere run `gcloud auth application-default '
                       'login` or set GOOGLE_APPLICATION_CREDENTIALS to a key file.$'):
      storage.check_reachable(url('run'), '--workdir')
  finally:
    storage.client.cache_clear()
  # The emulator grants everything: a refusal as google-cloud-storage raises it.
  _, api_exceptions, _ = storage.gcs_modules()
  refusal = api_exceptions.Forbidden('GET https://storage.googleapis.com/storage/v1/b/runs/o: '
                                     'sa@p.iam.gserviceaccount.com does not have '
                                     'storage.objects.list access')
  assert str(storage.gcs_error(url('run'), refusal, '--workdir')) == (
      'no permission to use gs://runs (--workdir: 403 GET https://storage.googleapis.com/storage/'
      'v1/b/runs/o: sa@p.iam.gserviceaccount.com does not have storage.objects.list access); '
      'grant the account in use roles/storage.objectAdmin on the bucket '
      '(storage.objects.create/get/list/delete; launch/README.md).')


def test_a_traced_program_is_kept_in_the_bucket_and_read_back(emulator, monkeypatch):
  monkeypatch.setattr(traced_programs, 'directory', lambda: url('xla', 'traced'))
  arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4, np.int32)]
  counts = []
  for _ in range(2):
    with compile_cache.CacheCount() as count:
      halved, _ = traced_programs.compile_program(
          test_compile_cache.halve_and_sum, test_compile_cache.specs_of(*arrays),
          description={'in': 'gcs'}, out_shardings=test_compile_cache.replicated())(arrays)
    counts.append((count.traced_misses, count.traced_hits))
    np.testing.assert_array_equal(halved, arrays[0] / 2)
  assert counts == [(1, 0), (0, 1)]
  assert len(storage.list_objects(url('xla', 'traced'))) == 1
