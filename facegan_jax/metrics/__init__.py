"""Measuring images: the FID Inception network, FID/KID/precision/recall/density/coverage, and
the distances they are computed from."""
