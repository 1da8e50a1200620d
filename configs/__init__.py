"""Configs: `get_config(variant)` functions for `--config=configs/FILE.py[:variant]`."""
