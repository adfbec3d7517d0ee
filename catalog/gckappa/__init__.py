"""GC density and its correlation with the lensing convergence, on the pixel grid of a kappa map.

The method follows the Abell S1063 GC study (Diego et al. 2026). The GC-kappa kernel is the
weight one GC gives a pixel at distance ``d``::

    W(d) = 1 / (S_L + d)^alpha,    d and S_L in arcsec,

with ``alpha = 1.6`` and softening ``S_L = 0.9"`` by default (``GC_KERNEL_ALPHA`` and
``GC_KERNEL_SOFTENING_ARCSEC`` in ``catalog/constants.py``). The continuous GC density
``rho_gc(x) = sum_i W(|x - x_i|)`` (arcsec^-alpha) is computed by FFT; masked regions are
inpainted by Monte Carlo from that density; ``beta = sum(kappa rho) / sum(rho^2)``
(arcsec^alpha) rescales ``rho_gc`` to ``kappa``; GC counts in 3"x3" boxes give
``<kappa> = A n_gc^B`` (n_gc in arcsec^-2); radial profiles are background subtracted; a GC
mass fraction turns the lensing mass (Sigma_cr in Msun/arcsec^2 times kappa) into a mean GC
mass in Msun. kappa is dimensionless.

Modules
-------
density
    :func:`kernel`, :func:`count_grid`, :func:`density_fft`, :func:`density_direct`.
inpainting
    :func:`inpaint`, Monte Carlo GCs in the masked pixels.
correlation
    :func:`beta` and :func:`pixel_correlation` of kappa and rho_gc, pixel by pixel.
boxes
    :func:`box_stats` and the power-law fit :func:`fit_power_law` (its bootstrap in blocks of
    :func:`boxes.power_law_block`, in process or on Dask).
profiles
    :func:`radial_profile`, :func:`image_profile` (on an image's footprint),
    :func:`background_from_annulus`, :func:`background_from_counts`,
    :func:`background_per_arcsec2`, :func:`boxes_minus_background`, :func:`gc_mass_budget`.
grid
    The argument checks and pixel conventions the modules share.
plots
    The figures of a correlation run.

Everything here works in pixel coordinates of the kappa grid: arrays are shaped ``(ny, nx)`` and
indexed ``[iy, ix]``; positions ``px, py`` are float pixel coordinates, 0-based, with pixel centres
at integers (pixel ``i`` covers ``[i - 0.5, i + 0.5)``). Going to and from the sky is the job of
``catalog.lensing``; the run that reads the lake is ``catalog/runs/correlation.py``, and the
synthetic GCs and masks of the tests are in ``catalog/simulations/gcs.py``. Random numbers come
only from a ``numpy.random.Generator`` passed in.
"""

from catalog.gckappa.boxes import box_stats, fit_power_law
from catalog.gckappa.correlation import beta, pixel_correlation
from catalog.gckappa.density import DIRECT_MAX_ELEMENTS, count_grid, density_direct, density_fft, kernel
from catalog.gckappa.inpainting import inpaint
from catalog.gckappa.profiles import (
    GC_MASS_FRACTION,
    background_from_annulus,
    background_from_counts,
    background_per_arcsec2,
    boxes_minus_background,
    gc_mass_budget,
    image_profile,
    radial_profile,
)

__all__ = [
    "DIRECT_MAX_ELEMENTS",
    "GC_MASS_FRACTION",
    "background_from_annulus",
    "background_from_counts",
    "image_profile",
    "background_per_arcsec2",
    "boxes_minus_background",
    "beta",
    "box_stats",
    "count_grid",
    "density_direct",
    "density_fft",
    "fit_power_law",
    "gc_mass_budget",
    "inpaint",
    "kernel",
    "pixel_correlation",
    "radial_profile",
]
