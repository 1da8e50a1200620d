"""Data parallelism: 1, 2 and 8 devices compute the same training (BatchNorm over the global batch)."""

import numpy as np
import pytest

from tests.helpers import multidevice


@pytest.mark.slow
def test_one_two_and_eight_devices_give_the_same_losses_and_parameters(tmp_path):
  out = tmp_path / 'runs.npz'
  result = multidevice.run_python(['tests/helpers/steps_on_meshes.py', str(out), '4', 'test',
                                   '1', '2', '8'], devices=8)
  assert result.returncode == 0, result.stderr[-3000:]
  runs = np.load(out)
  for count in (2, 8):
    np.testing.assert_allclose(runs[f'losses_{count}'], runs['losses_1'], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(runs[f'params_{count}'], runs['params_1'], rtol=1e-4, atol=2e-6)
  assert not np.allclose(runs['losses_1'][0], runs['losses_1'][-1])  # training moved
