"""Training: the config check, the static `Trainer` (`trainer`), the train state (`state`), the
jitted step and its phases (`step`), the loop (`loop`); and the pieces the step is made of:
losses and regularisers, optimisers and schedules, augmentation, the EMA, the divergence guard
and the stop signals."""
