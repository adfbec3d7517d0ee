"""Robust noise, the bright-source and edge masks, and mask dilation (``catalog.images.background``).

Measured figures are printed (``pytest -s``) so that drifts are visible.
"""

from __future__ import annotations

import numpy as np
import pytest

from catalog import images as im
from catalog.images.background import _dilate


def test_robust_noise_ignores_sources_and_masked_pixels():
    rng = np.random.default_rng(0)
    img = rng.normal(0.0, 2.0, (400, 400))
    img[:20] = 1e4  # a saturated band, masked
    mask = np.zeros(img.shape, dtype=bool)
    mask[:20] = True
    img[100:110, 100:110] += 30.0  # a source, left in: the MAD shrugs it off
    img[300, 300] = np.nan
    assert im.robust_noise(img, mask) == pytest.approx(2.0, rel=0.02)
    assert np.isnan(im.robust_noise(np.full((3, 3), np.nan)))


def test_auto_mask_takes_bcg_core_galaxy_edges_but_not_gcs(cluster):
    img = cluster["image"].copy()
    yy, xx = np.mgrid[0:1024, 0:1024]
    img += 30.0 * np.exp(-0.5 * ((xx - 200) ** 2 + (yy - 800) ** 2) / 6.0**2)  # a compact galaxy
    weight = cluster["weight"].copy()
    weight[600:640, 900:960] = 0  # a chip gap
    mask = im.auto_mask(img, weight)
    assert mask[512, 512] and mask[800, 200]
    assert mask[620, 930] and mask[620, 890] and not mask[620, 888]  # the gap (x >= 900) grown by 10 px
    assert mask[:18].all() and mask[:, -18:].all()  # zero-weight border of 8 px + 10 px
    t = cluster["truth"]
    far = np.hypot(t["x"] - 511.5, t["y"] - 511.5) > 250
    hit = mask[np.rint(t["y"]).astype(int), np.rint(t["x"]).astype(int)]
    inner = (t["x"] > 30) & (t["x"] < 994) & (t["y"] > 30) & (t["y"] < 994)
    assert hit[far & inner].mean() < 0.02  # GCs, even the brightest, stay unmasked
    print(f"\nauto_mask: {mask.mean():.1%} of the cluster mosaic masked")


def test_dilate_is_a_disk():
    m = np.zeros((41, 41), dtype=bool)
    m[20, 20] = True
    yy, xx = np.mgrid[0:41, 0:41]
    for r in (1.0, 3.0, 5.5, 10.0):
        np.testing.assert_array_equal(_dilate(m, r), (xx - 20) ** 2 + (yy - 20) ** 2 <= r * r)
