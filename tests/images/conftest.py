"""Synthetic mosaics with a known truth, built once for the image tests (package scope).

Mosaics come from ``catalog.simulations.mosaic.make_test_mosaic`` (Moffat PSF, FWHM 2 px,
Gaussian noise of 1 per pixel, 0.03"/pix assumed for areas). Tests must not write to them.
"""

from __future__ import annotations

import numpy as np
import pytest

from catalog import images as im
from catalog.simulations.mosaic import make_test_mosaic


@pytest.fixture(scope="package")
def cluster():
    """1024x1024 px (0.26 arcmin^2) around a BCG with ICL, 1500 point sources of flux 5-500."""
    return make_test_mosaic((1024, 1024), n_points=1500, rng=np.random.default_rng(2))


@pytest.fixture(scope="package")
def cluster_detections(cluster):
    return im.detect_point_sources([cluster["image"]], [cluster["weight"]])


@pytest.fixture(scope="package")
def isolated():
    """No BCG, sources at least 15 px apart so that apertures and annuli see only sky."""
    return make_test_mosaic(
        (1024, 1024), n_points=1500, bcg=False, min_sep_pix=15.0, rng=np.random.default_rng(1)
    )
