"""Lens-model maps: read HFF FITS products, derive kappa/gamma/mu, sample them at GC positions.

Modules
-------
maps
    :class:`LensMap` (one quantity on a celestial pixel grid), :data:`HFF_QUANTITIES`, reading
    and writing HFF FITS files (:func:`read_hff_map`, :func:`write_hff_map`), the quantity
    named by a file name (:func:`quantity_from_filename`).
derived
    kappa and gamma (:func:`kappa_gamma_from_deflection`) and det A from deflection maps;
    :func:`magnification`, :func:`tangential_eigenvalue`, :func:`on_critical_curve`; the
    distance ratio :func:`dls_ds`, :func:`source_dls_ds` and :func:`sigma_crit_msun_per_arcsec2`
    in :data:`DEFAULT_COSMOLOGY`.
sourceplane
    The lens equation on deflection maps: image -> source plane (:func:`to_source_plane`) and
    all images of a source position (:func:`solve_lens_equation`).
sampling
    Map values at sky positions (:func:`sample_map`) and how much mu changes within one map
    pixel (:func:`mu_pixel_change`).

The synthetic cluster of ``gccat simulate lens-field`` is in ``catalog/simulations/lensfield.py``.

Conventions
-----------
- Maps follow the Hubble Frontier Fields (HFF) products: one 2-D image per quantity, the quantity
  in the file name (``..._kappa.fits``, ``..._x-arcsec-deflect.fits``), normalised to
  D_ls/D_s = 1. Rescale kappa and gamma by :func:`dls_ds` for a source at z_s.
- Arrays are indexed ``data[iy, ix]`` as in FITS; pixel coordinates are 0-based (origin 0).
- Units: angles and pixel sizes in arcsec (sky positions in deg); deflections in arcsec along
  the *pixel* axes (x along NAXIS1, y along NAXIS2), as in the HFF and Lenstool products; kappa,
  gamma and mu dimensionless; Sigma_cr in Msun/arcsec^2; masses in Msun; velocities in km/s.
  Derivatives are taken along the pixel axes, so kappa and |gamma| are frame-independent;
  gamma1/gamma2 are in the pixel frame (x is West when CDELT1 < 0).
- Constants (cosmology, arcsec per radian, the mu-pixel-change criterion) live in
  ``catalog/constants.py``.
"""

from catalog.lensing.derived import (
    DEFAULT_COSMOLOGY,
    dls_ds,
    jacobian_determinant_from_deflection,
    kappa_gamma_from_deflection,
    kpc_per_arcsec,
    magnification,
    on_critical_curve,
    pc_per_arcsec,
    sigma_crit_msun_per_arcsec2,
    source_dls_ds,
    tangential_eigenvalue,
)
from catalog.lensing.maps import HFF_QUANTITIES, LensMap, quantity_from_filename, read_hff_map, write_hff_map
from catalog.lensing.sampling import mu_pixel_change, sample_map
from catalog.lensing.sourceplane import ImageSolutions, solve_lens_equation, to_source_plane

__all__ = [
    "DEFAULT_COSMOLOGY",
    "HFF_QUANTITIES",
    "ImageSolutions",
    "LensMap",
    "dls_ds",
    "jacobian_determinant_from_deflection",
    "kappa_gamma_from_deflection",
    "kpc_per_arcsec",
    "magnification",
    "mu_pixel_change",
    "on_critical_curve",
    "quantity_from_filename",
    "read_hff_map",
    "sample_map",
    "sigma_crit_msun_per_arcsec2",
    "solve_lens_equation",
    "source_dls_ds",
    "tangential_eigenvalue",
    "pc_per_arcsec",
    "to_source_plane",
    "write_hff_map",
]
