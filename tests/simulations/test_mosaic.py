"""The synthetic mosaic simulator (``catalog.simulations.mosaic``) keeps its truth."""

from __future__ import annotations

import numpy as np
import pytest

from catalog import images as im
from catalog.simulations.mosaic import make_test_mosaic


def test_make_test_mosaic_truth_is_consistent():
    m = make_test_mosaic((256, 256), n_points=50, rng=np.random.default_rng(0), noise_sigma=0.5)
    t = m["truth"]
    assert (m["weight"][:8] == 0).all() and (m["image"][:8] == 0).all() and np.isinf(m["error"][:8]).all()
    assert m["weight"][128, 128] == pytest.approx(4.0) and m["error"][128, 128] == 0.5
    assert t["flux"].min() >= 5 and t["flux"].max() <= 500
    d = np.hypot(t["x"][:, None] - t["x"], t["y"][:, None] - t["y"]) + np.eye(50) * 1e9
    assert d.min() >= 5.0  # 6 px on the pixel grid
    noise = m["image"] - im.inject_point_sources(m["bcg_model"], m["psf"], t["x"], t["y"], t["flux"])
    assert np.std(noise[m["weight"] > 0]) == pytest.approx(0.5, rel=0.03)
