"""A synthetic cluster lens map (``gccat simulate lens-field``): cored isothermal halos in HFF form.

Maps are :class:`catalog.lensing.LensMap` objects normalised to D_ls/D_s = 1, on a TAN grid
with pixels in arcsec; deflections in arcsec, the potential in arcsec^2, kappa and gamma
dimensionless. Written with :func:`catalog.lensing.write_hff_map`, they read back as any HFF map.
"""

from __future__ import annotations

import numpy as np
from astropy import constants as const
from astropy import units as u
from astropy.wcs import WCS

from catalog.constants import ARCSEC_PER_RAD
from catalog.errors import GccatError
from catalog.lensing import LensMap
from catalog.lensing.maps import QUANTITY_KEYWORD

_C_KM_S = const.c.to_value(u.km / u.s)


def _nis_fields(dx, dy, b, rc):
    """Cored isothermal sphere at offsets (dx, dy) in arcsec: kappa, gamma1, gamma2, ax, ay, psi.

    kappa = b / (2 s), s = sqrt(r^2 + rc^2); alpha = b theta / (s + rc) in arcsec;
    psi = b (s - rc - rc ln((s + rc) / (2 rc))) in arcsec^2 (0 at the centre).
    """
    s = np.sqrt(dx**2 + dy**2 + rc**2)
    sp = s + rc
    kappa = b / (2.0 * s)
    gamma1 = -b * (dx**2 - dy**2) / (2.0 * s * sp**2)
    gamma2 = -b * dx * dy / (s * sp**2)
    psi = b * (s - rc - rc * np.log(sp / (2.0 * rc)))
    return kappa, gamma1, gamma2, b * dx / sp, b * dy / sp, psi


def _default_halos(shape, pixel_scale_arcsec, seed) -> list[dict]:
    """A cluster: a main halo, a group-scale halo and six truncated galaxies placed with ``seed``."""
    rng = np.random.default_rng(seed)
    half_x, half_y = (shape[1] - 1) / 2 * pixel_scale_arcsec, (shape[0] - 1) / 2 * pixel_scale_arcsec
    halos = [
        {"x_arcsec": 0.0, "y_arcsec": 0.0, "sigma_v": 700.0, "r_core_arcsec": 8.0},
        {
            "x_arcsec": 0.35 * half_x,
            "y_arcsec": -0.25 * half_y,
            "sigma_v": 450.0,
            "r_core_arcsec": 4.0,
            "r_cut_arcsec": 40.0,
        },
    ]
    for _ in range(6):
        halos.append(
            {
                "x_arcsec": rng.uniform(-0.6, 0.6) * half_x,
                "y_arcsec": rng.uniform(-0.6, 0.6) * half_y,
                "sigma_v": rng.uniform(120.0, 250.0),
                "r_core_arcsec": 0.3,
                "r_cut_arcsec": 6.0,
            }
        )
    return halos


def _einstein_b_arcsec(halo: dict, k: int, rc: float, r_cut: float) -> float:
    """SIS-limit Einstein radius b (arcsec) of a halo, at D_ls/D_s = 1."""
    has_k0, has_sv = "kappa0" in halo, "sigma_v" in halo
    if has_k0 == has_sv:
        raise GccatError(f"halo {k} needs exactly one of kappa0 and sigma_v")
    if has_sv:
        # b = 4 pi (sigma_v / c)^2 D_ls/D_s, the Einstein radius of the singular sphere.
        return 4.0 * np.pi * (float(halo["sigma_v"]) / _C_KM_S) ** 2 * ARCSEC_PER_RAD
    # kappa(0) = b/2 (1/r_c - 1/r_cut), with 1/r_cut = 0 for an untruncated halo.
    return 2.0 * float(halo["kappa0"]) / (1.0 / rc - 1.0 / r_cut)


_SIM_UNITS = {
    "kappa": "",
    "gamma": "",
    "gamma1": "",
    "gamma2": "",
    "x-arcsec-deflect": "arcsec",
    "y-arcsec-deflect": "arcsec",
    "psi": "arcsec2",
}


def simulate_lens_field(
    shape: tuple[int, int] = (512, 512),
    pixel_scale_arcsec: float = 0.2,
    centre_deg: tuple[float, float] = (342.18321, -44.53088),
    *,
    halos: list[dict] | None = None,
    seed: int = 0,
    quantity: str = "kappa",
) -> LensMap:
    """A synthetic cluster lens map in HFF form (D_ls/D_s = 1), for tests and demos.

    Each halo is a cored isothermal sphere, optionally truncated (the dPIE profile of Lenstool):

        kappa(r) = b/2 * (1/sqrt(r^2 + r_c^2) - 1/sqrt(r^2 + r_cut^2)),

    without the second term for an untruncated halo. b (arcsec) is 4 pi (sigma_v / c)^2, the
    Einstein radius of the singular isothermal sphere of velocity dispersion sigma_v, or follows
    from a given central convergence kappa0 = b/2 (1/r_c - 1/r_cut). Deflection, shear and
    potential are the analytic ones summed over the halos, so deflection maps from here test
    :func:`catalog.lensing.kappa_gamma_from_deflection`.

    Parameters
    ----------
    shape : (int, int)
        (ny, nx) in pixels.
    pixel_scale_arcsec : float
        Pixel size in arcsec.
    centre_deg : (float, float)
        (RA, Dec) in deg of the map centre, pixel ((nx - 1)/2, (ny - 1)/2); default the BCG of
        Abell S1063.
    halos : list of dict, optional
        Each with ``x_arcsec``, ``y_arcsec`` (offset from the map centre in arcsec along the
        pixel x and y axes: x is West, y North), ``r_core_arcsec`` (> 0), optionally
        ``r_cut_arcsec`` (> r_core), and one of ``kappa0`` (central convergence) or
        ``sigma_v`` (km/s). Default: a main halo (sigma_v = 700 km/s, r_c = 8") at the centre,
        a 450 km/s group and six galaxies (120-250 km/s, r_c = 0.3", r_cut = 6") placed at
        random with ``seed``; the central half of the default map has median kappa ~0.43 and a
        small critical curve (mu < 0 on ~1% of the map).
    seed : int
        Seed for the galaxy positions and velocity dispersions of the default halos.
    quantity : str
        ``kappa`` (default), ``gamma``, ``gamma1``, ``gamma2``, ``x-arcsec-deflect``,
        ``y-arcsec-deflect`` or ``psi``.

    Returns
    -------
    LensMap
        On a RA---TAN/DEC--TAN WCS with CDELT1 < 0 (East left); the header has
        ``GCSYNTH = T`` and the halos (``NHALO``, ``HnnnX``/``Y``/``B``/``RC``/``RT`` in
        arcsec, RT = 0 for no truncation).
    """
    if quantity not in _SIM_UNITS:
        raise GccatError(f"cannot simulate '{quantity}'; choose one of {', '.join(_SIM_UNITS)}")
    ny, nx = (int(n) for n in shape)
    if ny < 1 or nx < 1 or not pixel_scale_arcsec > 0:
        raise GccatError(f"need a positive shape and pixel scale, not {shape} and {pixel_scale_arcsec}")
    if halos is None:
        halos = _default_halos((ny, nx), pixel_scale_arcsec, seed)
    params = []
    for k, halo in enumerate(halos):
        try:
            x0, y0 = float(halo["x_arcsec"]), float(halo["y_arcsec"])
            rc, r_cut = float(halo["r_core_arcsec"]), float(halo.get("r_cut_arcsec", np.inf))
        except (KeyError, TypeError, ValueError) as exc:
            raise GccatError(f"halo {k} needs numeric x_arcsec, y_arcsec and r_core_arcsec ({exc})") from exc
        if not 0 < rc < r_cut:
            raise GccatError(f"halo {k}: need 0 < r_core_arcsec < r_cut_arcsec (the profile is cored)")
        params.append((x0, y0, _einstein_b_arcsec(halo, k, rc, r_cut), rc, r_cut))

    x = (np.arange(nx) - (nx - 1) / 2) * pixel_scale_arcsec
    y = (np.arange(ny) - (ny - 1) / 2) * pixel_scale_arcsec
    xx, yy = np.meshgrid(x, y)
    index = {"kappa": 0, "gamma1": 1, "gamma2": 2, "x-arcsec-deflect": 3, "y-arcsec-deflect": 4, "psi": 5}
    total = np.zeros((6, ny, nx))
    for x0, y0, b, rc, r_cut in params:
        total += np.asarray(_nis_fields(xx - x0, yy - y0, b, rc))
        if np.isfinite(r_cut):
            # Every field is linear in the profile: dPIE = NIS(r_c) - NIS(r_cut).
            total -= np.asarray(_nis_fields(xx - x0, yy - y0, b, r_cut))
    # Shear components add linearly; the magnitude does not.
    data = np.hypot(total[1], total[2]) if quantity == "gamma" else total[index[quantity]]

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(centre_deg[0]), float(centre_deg[1])]
    wcs.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]  # 1-based: the map centre
    wcs.wcs.cdelt = [-pixel_scale_arcsec / 3600.0, pixel_scale_arcsec / 3600.0]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    wcs.pixel_shape = (nx, ny)
    header = wcs.to_header()
    header["ORIGIN"] = ("gccat", "catalog.simulations.simulate_lens_field")
    header["OBJECT"] = ("synthetic cluster", "not a real lens model")
    header["GCSYNTH"] = (True, "synthetic lens model (gccat)")
    header["BUNIT"] = (_SIM_UNITS[quantity], "arcsec for deflections, dimensionless otherwise")
    header["DLS_DS"] = (1.0, "normalisation D_ls/D_s")
    header[QUANTITY_KEYWORD] = (quantity, "lens-map quantity (HFF file-name suffix)")
    header["NHALO"] = (len(params), "number of cored isothermal (dPIE) halos")
    header["COMMENT"] = "Halo k: kappa = HkB/2 (1/sqrt(r^2+HkRC^2) - 1/sqrt(r^2+HkRT^2)), in arcsec."
    header["SIMSEED"] = (int(seed), "seed of the default halos")
    for k, (x0, y0, b, rc, r_cut) in enumerate(params[:999], start=1):
        header[f"H{k:03d}X"] = (x0, "halo x offset, arcsec (pixel x axis)")
        header[f"H{k:03d}Y"] = (y0, "halo y offset, arcsec (pixel y axis)")
        header[f"H{k:03d}B"] = (b, "halo Einstein radius b, arcsec")
        header[f"H{k:03d}RC"] = (rc, "halo core radius, arcsec")
        header[f"H{k:03d}RT"] = (r_cut if np.isfinite(r_cut) else 0.0, "halo cut radius, arcsec (0: none)")
    return LensMap(quantity, data, wcs, header, None)


def simulate_sis_deflection(
    theta_e_arcsec: float = 5.0,
    shape: tuple[int, int] = (201, 201),
    pixel_scale_arcsec: float = 0.1,
    centre_deg: tuple[float, float] = (110.83, -73.45),
    lens_offset_arcsec: tuple[float, float] = (0.0, 0.0),
) -> tuple[LensMap, LensMap]:
    """HFF-style deflection maps of a singular isothermal sphere, alpha = theta_E theta/|theta|.

    A source at distance beta < theta_E from the lens centre has two images on the line
    through the centre and the source, at beta + theta_E and beta - theta_E (the second on
    the other side), with magnifications 1 + theta_E/beta and 1 - theta_E/beta.

    Parameters
    ----------
    theta_e_arcsec : float
        Einstein radius at D_ls/D_s = 1, arcsec.
    shape, pixel_scale_arcsec, centre_deg
        As for :func:`simulate_lens_field` (the map centre is pixel ((nx-1)/2, (ny-1)/2)).
    lens_offset_arcsec : (float, float)
        Lens centre offset from the map centre along the pixel x and y axes, arcsec.

    Returns
    -------
    alpha_x, alpha_y : LensMap
        ``x-arcsec-deflect`` and ``y-arcsec-deflect`` maps (arcsec along the pixel axes),
        0 at the centre itself.
    """
    if not theta_e_arcsec > 0:
        raise GccatError(f"the Einstein radius must be positive, not {theta_e_arcsec}")
    ref = simulate_lens_field(shape, pixel_scale_arcsec, centre_deg, halos=[_TINY_HALO], quantity="kappa")
    ny, nx = ref.shape
    dx = (np.arange(nx) - (nx - 1) / 2) * pixel_scale_arcsec - lens_offset_arcsec[0]
    dy = (np.arange(ny) - (ny - 1) / 2) * pixel_scale_arcsec - lens_offset_arcsec[1]
    xx, yy = np.meshgrid(dx, dy)
    r = np.hypot(xx, yy)
    with np.errstate(invalid="ignore", divide="ignore"):
        ax = np.where(r > 0, theta_e_arcsec * xx / r, 0.0)
        ay = np.where(r > 0, theta_e_arcsec * yy / r, 0.0)
    out = []
    for quantity, data in (("x-arcsec-deflect", ax), ("y-arcsec-deflect", ay)):
        header = ref.header.copy()
        header["OBJECT"] = ("singular isothermal sphere", "not a real lens model")
        header["BUNIT"] = ("arcsec", "deflection along the pixel axis")
        header[QUANTITY_KEYWORD] = (quantity, "lens-map quantity (HFF file-name suffix)")
        header["SISTHETE"] = (float(theta_e_arcsec), "Einstein radius, arcsec (D_ls/D_s = 1)")
        out.append(LensMap(quantity, data, ref.wcs.deepcopy(), header, None))
    return out[0], out[1]


# A placeholder halo for the grid and header of simulate_sis_deflection (its kappa is unused).
_TINY_HALO = {"x_arcsec": 0.0, "y_arcsec": 0.0, "kappa0": 0.1, "r_core_arcsec": 1.0}
