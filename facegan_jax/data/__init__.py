"""Images in: every image source behind `image_sources.load_dataset` (NVIDIA's dataset zips in
`dataset_archive`), their labels, the prepared uint8 cache, the deterministic host-sharded
stream of batches, and pixel conventions and PNG grids."""
