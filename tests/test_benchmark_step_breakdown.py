"""benchmarks/step_breakdown.py's stubs take the convolutions they name out of the step."""

import re

from benchmarks import step_breakdown
from benchmarks import step_timing
from configs import celeba


def convolutions_in_step(variant):
  with step_breakdown.VARIANTS[variant]():
    _, compiled, _, _, _ = step_timing.compile_step(celeba.get_config('test'), batch_size=4)
  (step,) = compiled.values()  # DCGAN has no lazy regularisers: one variant
  return len(re.findall(r'= f32\[[0-9,]*\]\{[0-9,]*\} convolution\(', step.as_text()))


def test_stubs_remove_weight_gradients_and_transposed_convolutions():
  # DCGAN-16 has two layer pairs (16x16x3 <-> 8x8 and 8x8 <-> 4x4). Each pair runs 4 strided
  # convs (D on real, on fakes, on fakes for G; G's input gradient) and 3 weight gradients (D's
  # two, G's); transposed convs: G's forward and the input gradients of D on fakes for G, plus
  # D's two input gradients in its own update except on its input layer: 2 + 4.
  assert convolutions_in_step('full') == 2 * 4 + 2 * 3 + (2 + 4)
  assert convolutions_in_step('no weight gradients') == 2 * 4 + (2 + 4)
  assert convolutions_in_step('no transposed convolutions') == 2 * 4 + 2 * 3
