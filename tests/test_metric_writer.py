"""TensorBoard events and metrics.jsonl: what is written reads back; only process 0 writes."""

import json

import numpy as np

from facegan_jax.runs import metric_writer
from tests.helpers import event_files
from tests.helpers import multidevice


def test_scalars_and_images_read_back(tmp_path):
  rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), np.uint8)
  gray = np.random.default_rng(1).integers(0, 256, (4, 7, 1), np.uint8)
  with metric_writer.MetricWriter(str(tmp_path), enabled=True) as writer:
    writer.write_scalars(10, {'d_loss': 1.5, 'fid': 123.25}, context={'protocol': 'clean'})
    writer.write_scalars(20, {'d_loss': 0.5})
    writer.write_image(10, 'samples', rgb)
    writer.write_image(20, 'samples', gray)
  scalars, images = event_files.read_events(str(tmp_path))
  assert scalars == {'d_loss': {10: 1.5, 20: 0.5}, 'fid': {10: 123.25}}
  np.testing.assert_array_equal(images['samples'][10], rgb)
  event_files.assert_gray_grid(images['samples'][20], gray[..., 0])
  lines = (tmp_path / 'metrics.jsonl').read_text().splitlines()
  # The context goes to metrics.jsonl only: TensorBoard holds numbers.
  assert [json.loads(line) for line in lines] == [
      {'d_loss': 1.5, 'fid': 123.25, 'protocol': 'clean', 'step': 10},
      {'d_loss': 0.5, 'step': 20}]


def test_other_processes_write_nothing(tmp_path):
  with metric_writer.MetricWriter(str(tmp_path), enabled=False) as writer:
    writer.write_scalars(1, {'d_loss': 1.0})
    writer.write_image(1, 'samples', np.zeros((2, 2, 3), np.uint8))
  assert not list(tmp_path.iterdir())


def test_log_line_shows_known_scalars_first_with_short_names():
  line = metric_writer.format_scalars({'lr': 0.0002, 'g_loss': 2.0, 'd_real': 0.75,
                                       'd_loss': 1.0})
  assert line == 'd_loss 1.0000 g_loss 2.0000 D(x) 0.7500 lr 0.0002'
  line = metric_writer.format_scalars({'coverage': 0.5, 'precision': 0.25, 'kid': 0.01})
  assert line == 'KID 0.0100 precision 0.2500 coverage 0.5000'


def test_a_resumed_run_tells_tensorboard_to_drop_later_steps(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with metric_writer.MetricWriter(str(tmp_path), enabled=True, start_step=10) as writer:
    writer.write_scalars(11, {'d_loss': 1.0})
  (path,) = tmp_path.glob('events.out.tfevents.*')
  starts = [event.step for event in tf.compat.v1.train.summary_iterator(str(path))
            if event.session_log.status == tf.compat.v1.SessionLog.START]
  assert starts == [11]  # TensorBoard then discards events of steps >= 11 from earlier files


def test_starting_a_run_does_not_import_torch_even_where_it_is_installed():
  result = multidevice.run_python(['-c', 'import importlib.util, sys; import facegan_jax.main; '
                                   'print(importlib.util.find_spec("torch") is not None, '
                                   '"torch" in sys.modules)'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split() == ['True', 'False']  # installed (the test extra), not imported
