"""Detection on synthetic images with a known truth (``catalog.images.detection``).

The high-pass filter, the sorted brightest-pixel scan against the published iterative
algorithm, completeness versus S/N (see ``tests/images/synthetic.py`` for the two S/N
definitions), false detections and the summing of bands. Measured figures (completeness,
false detections) are printed (``pytest -s``) so that drifts are visible.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from catalog import images as im
from catalog.errors import GccatError
from catalog.images.detection import _brightest_pixel_scan
from catalog.simulations.mosaic import make_test_mosaic
from tests.images.synthetic import MATCH_PIX, arcmin2, away_from_mask, match, snr_optimal, snr_peak


def test_highpass_removes_smooth_light_and_keeps_point_sources():
    yy, xx = np.mgrid[0:128, 0:128]
    smooth = 50.0 + 0.1 * xx + 0.05 * yy  # ICL-like plane
    psf = im.make_psf(2.0)
    img = im.inject_point_sources(smooth, psf, [64.3], [60.8], [100.0])
    img[5, 5] = np.nan
    out = im.gaussian_highpass(img)
    assert out.shape == img.shape and np.isfinite(out).all()
    inner = np.s_[20:108, 20:108]
    far = np.hypot(xx - 64.3, yy - 60.8)[inner] > 12
    assert np.abs(out[inner][far]).max() < 1e-3 * 50  # the plane is gone
    iy, ix = np.unravel_index(np.argmax(np.where(np.isfinite(out), out, -np.inf)), out.shape)
    assert (iy, ix) == (61, 64)
    assert im.gaussian_highpass(img.astype(np.float32)).dtype == np.float32


def iterative_detection(filtered, level, radius):
    """The published algorithm literally: brightest pixel, exclusion disk, repeat."""
    f = np.where(np.isfinite(filtered), filtered, -np.inf).astype(float)
    yy, xx = np.indices(f.shape)
    out = []
    while True:
        k = int(np.argmax(f))
        iy, ix = divmod(k, f.shape[1])
        if f[iy, ix] < level:
            return out
        out.append((ix, iy))
        f[(xx - ix) ** 2 + (yy - iy) ** 2 <= radius**2] = -np.inf


def test_sorted_scan_equals_iterative_brightest_pixel():
    rng = np.random.default_rng(4)
    f = im.gaussian_highpass(rng.normal(size=(90, 110)) + 0.0)
    f = im.inject_point_sources(f, im.make_psf(3.0), rng.uniform(5, 105, 25), rng.uniform(5, 85, 25), 40.0)
    f[10:20, 30:50] = np.nan  # masked
    level = 2.0 * np.nanstd(f)
    ix, iy, truncated = _brightest_pixel_scan(f, level, 3.0, 10**6)
    expected = iterative_detection(f, level, 3.0)
    assert not truncated and len(expected) > 30
    assert list(zip(ix.tolist(), iy.tolist(), strict=True)) == expected


def test_completeness_vs_snr_and_purity(cluster, cluster_detections):
    d, t, psf = cluster_detections, cluster["truth"], cluster["psf"]
    dist = match(t["x"], t["y"], d.x, d.y)
    found = dist <= MATCH_PIX
    away = away_from_mask(d.mask, t["x"], t["y"])
    peak, opt = snr_peak(t["flux"], psf), snr_optimal(t["flux"], psf)
    lines = ["", "completeness (1 band, sources away from masks)", " S/N bin   peak S/N      optimal S/N"]
    for lo, hi in ((3, 5), (5, 7), (7, 10), (10, 15), (15, 20), (20, 30), (30, 1e9)):
        cells = []
        for snr in (peak, opt):
            s = away & (snr >= lo) & (snr < hi)
            cells.append(f"{found[s].mean():5.2f} ({s.sum():3d})" if s.any() else "   -       ")
        lines.append(f" {lo:>3}-{hi if hi < 1e9 else 'inf':<4} {cells[0]}   {cells[1]}")
    print("\n".join(lines))
    assert (away & (peak >= 10)).sum() > 300
    assert found[away & (peak >= 10)].mean() >= 0.90
    assert found[away & (opt >= 20)].mean() >= 0.95
    assert found[away & (opt < 5)].mean() < 0.05  # the threshold does cut: not everything is "found"
    # positions: sub-pixel centroids of S/N > 20 sources within 0.25 px (median)
    assert np.median(dist[found & (opt > 20)]) < 0.25
    # detections matching no true source, over the unmasked area
    spurious = match(d.x, d.y, t["x"], t["y"]) > MATCH_PIX
    rate = spurious.sum() / arcmin2(int((~d.mask).sum()))
    print(
        f"spurious detections on the cluster mosaic: {spurious.sum()} ({rate:.1f} per arcmin^2); "
        f"{len(d)} detections, {d.mask_area_pix / d.mask.size:.1%} masked"
    )
    assert rate < 20
    # the exclusion disk holds
    pairs = cKDTree(np.c_[d.x, d.y]).query_pairs(3.0 - 1.0)  # centroids move by <= 0.5 px each
    assert not pairs


def test_false_detections_on_pure_noise():
    rng = np.random.default_rng(8)
    img = rng.normal(size=(2048, 2048)).astype(np.float32)
    d = im.detect_point_sources([img])
    area = arcmin2(int((~d.mask).sum()))
    rate = len(d) / area
    print(
        f"\nfalse detections on pure noise: {len(d)} in {area:.2f} arcmin^2 = {rate:.1f} per arcmin^2 "
        f"(threshold {d.threshold / d.noise:.1f} sigma, kept >= {2 * d.threshold / d.noise:.1f} sigma)"
    )
    assert d.noise == pytest.approx(im.robust_noise(im.gaussian_highpass(img)[20:-20, 20:-20]), rel=0.02)
    assert rate < 10  # GC fields have thousands per arcmin^2
    assert (d.snr >= 5.0).all()


def test_summing_bands_detects_fainter_sources(cluster, cluster_detections):
    t = cluster["truth"]
    second = make_test_mosaic((1024, 1024), x=t["x"], y=t["y"], flux=t["flux"], rng=np.random.default_rng(9))
    d2 = im.detect_point_sources([cluster["image"], second["image"]], [cluster["weight"], second["weight"]])
    faint = (snr_peak(t["flux"], cluster["psf"]) > 6) & (snr_peak(t["flux"], cluster["psf"]) < 9)
    faint &= away_from_mask(d2.mask, t["x"], t["y"])
    one = (match(t["x"], t["y"], cluster_detections.x, cluster_detections.y) <= MATCH_PIX)[faint].mean()
    two = (match(t["x"], t["y"], d2.x, d2.y) <= MATCH_PIX)[faint].mean()
    print(f"\ncompleteness at per-band peak S/N 6-9: 1 band {one:.2f}, 2 bands {two:.2f}")
    assert two > one + 0.25


def test_detection_respects_user_mask_and_rejects_bad_input(cluster):
    user = np.zeros((1024, 1024), dtype=bool)
    user[:, :512] = True
    d = im.detect_point_sources([cluster["image"]], [cluster["weight"]], user)
    assert len(d) > 100 and (d.x > 511).all()
    assert d.mask_area_pix == int(d.mask.sum()) and np.isnan(d.filtered[d.mask]).all()
    with pytest.raises(GccatError, match="shape"):
        im.detect_point_sources([cluster["image"], cluster["image"][:100]])
    with pytest.raises(GccatError, match="band_weights"):
        im.detect_point_sources([cluster["image"]], band_weights=[1.0, 2.0])
