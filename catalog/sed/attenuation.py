"""What lies between the stars and the detector: internal dust, the IGM and Milky Way dust.

- Internal dust: Calzetti et al. (2000) (R_V = 4.05) on the rest frame, applied as a screen on
  stars and nebular emission alike (:func:`calzetti_attenuation`).
- IGM: the mean transmission of Inoue et al. (2014), with the Lyman-series coefficients of their
  Table 2 as shipped with bagpipes (:func:`igm_transmission`).
- Milky Way: Gordon et al. (2023) (dust_extinction G23) averaged through each filter curve
  (:func:`mw_extinction_mag`); the fits remove it from the photometry, the models never carry it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from catalog.sed.library import filter_curve, igm_coefficients

#: Calzetti et al. (2000) total-to-selective ratio.
CALZETTI_RV = 4.05
#: Lyman limit (Angstrom) of Inoue et al. (2014).
LYMAN_LIMIT_ANGSTROM = 911.8
#: Lyman-alpha (Angstrom).
LYMAN_ALPHA_ANGSTROM = 1215.67


def calzetti_attenuation(wave_rest_angstrom, av=1.0) -> np.ndarray:
    """Calzetti et al. (2000) attenuation A_lambda / A_V (R_V = 4.05), times ``av`` if given.

    Parameters
    ----------
    wave_rest_angstrom : array_like
        Rest-frame wavelengths in Angstrom.
    av : float or array_like, optional
        A_V in mag; the result is ``av * k(lambda) / R_V`` broadcast against the wavelengths, so
        ``av=1`` (default) returns A_lambda / A_V.

    Returns
    -------
    numpy.ndarray
        A_lambda / A_V (or A_lambda in mag for ``av`` != 1).

    Notes
    -----
    The published curve covers 0.12-2.2 micron. Blueward of 0.12 micron it continues as the power
    law k(lambda) = k(0.12 micron) (lambda / 0.12 micron)^-0.77 (continuous, the choice of
    bagpipes); redward of 2.2 micron the 0.63-2.2 micron formula is continued until k reaches
    zero (at 3.11 micron) and is zero beyond, so no attenuation is applied in the rest-frame
    mid-infrared.
    """
    lam = np.asarray(wave_rest_angstrom, dtype=np.float64) * 1e-4  # micron
    k_uv = CALZETTI_RV + 2.659 * (-2.156 + 1.509 / 0.12 - 0.198 / 0.12**2 + 0.011 / 0.12**3)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        k_blue = CALZETTI_RV + 2.659 * (-2.156 + 1.509 / lam - 0.198 / lam**2 + 0.011 / lam**3)
        k_red = CALZETTI_RV + 2.659 * (-1.857 + 1.040 / lam)
        k = np.where(lam < 0.12, k_uv * (lam / 0.12) ** -0.77, np.where(lam < 0.63, k_blue, k_red))
    k = np.clip(k, 0.0, None)
    return (
        np.asarray(av, dtype=np.float64)[..., None] * (k / CALZETTI_RV)
        if np.ndim(av)
        else float(av) * k / CALZETTI_RV
    )


def igm_transmission(wave_obs_angstrom, z: float) -> np.ndarray:
    """Mean IGM transmission exp(-tau) of Inoue et al. (2014) towards a source at redshift z.

    Parameters
    ----------
    wave_obs_angstrom : array_like
        Observed-frame wavelengths in Angstrom.
    z : float
        Source redshift.

    Returns
    -------
    numpy.ndarray
        Transmission in [0, 1]; 1 redward of Lyman-alpha at z.

    Notes
    -----
    Lyman-alpha forest (LAF) and damped Lyman-alpha system (DLA) components of the Lyman series
    (their eqs. 21-22, coefficients of their Table 2 for lines 2-40) and of the Lyman continuum
    (eqs. 25-29), as in bagpipes' ``igm_inoue2014`` but vectorised.
    """
    lam = np.atleast_1d(np.asarray(wave_obs_angstrom, dtype=np.float64))
    zp1 = 1.0 + float(z)
    if z <= 0:
        return np.ones_like(lam)
    c = igm_coefficients()
    lj = c[:, 1][:, None]
    a1, a2, a3, d1, d2 = (c[:, i][:, None] for i in range(2, 7))
    x = lam[None, :] / lj
    inside = (lam[None, :] > lj) & (lam[None, :] < lj * zp1)
    laf = np.where(x < 2.2, a1 * x**1.2, np.where(x < 5.7, a2 * x**3.7, a3 * x**5.5))
    dla = np.where(x < 3.0, d1 * x**2.0, d2 * x**3.0)
    tau = np.sum(np.where(inside, laf + dla, 0.0), axis=0)

    xl = lam / LYMAN_LIMIT_ANGSTROM
    lc = (xl > 1.0) & (xl < zp1)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if z < 1.2:
            laf_lc = 0.325 * (xl**1.2 - zp1**-0.9 * xl**2.1)
        elif z < 4.7:
            laf_lc = np.where(
                xl < 2.2,
                2.55e-2 * zp1**1.6 * xl**2.1 + 0.325 * xl**1.2 - 0.250 * xl**2.1,
                2.55e-2 * (zp1**1.6 * xl**2.1 - xl**3.7),
            )
        else:
            laf_lc = np.where(
                xl < 2.2,
                5.22e-4 * zp1**3.4 * xl**2.1 + 0.325 * xl**1.2 - 3.14e-2 * xl**2.1,
                np.where(
                    xl < 5.7,
                    5.22e-4 * zp1**3.4 * xl**2.1 + 0.218 * xl**2.1 - 2.55e-2 * xl**3.7,
                    5.22e-4 * (zp1**3.4 * xl**2.1 - xl**5.5),
                ),
            )
        if z < 2.0:
            dla_lc = 0.211 * zp1**2 - 7.66e-2 * zp1**2.3 * xl**-0.3 - 0.135 * xl**2
        else:
            dla_lc = np.where(
                xl < 3.0,
                0.634 + 4.7e-2 * zp1**3 - 1.78e-2 * zp1**3.3 * xl**-0.3 - 0.135 * xl**2 - 0.291 * xl**-0.3,
                4.7e-2 * zp1**3 - 1.78e-2 * zp1**3.3 * xl**-0.3 - 2.92e-2 * xl**3,
            )
    tau = tau + np.where(lc, laf_lc + dla_lc, 0.0)
    return np.exp(-np.clip(tau, 0.0, None))


def mw_extinction_mag(sedpy_names: Sequence[str], ebv: float, r_v: float = 3.1) -> np.ndarray:
    """Milky Way extinction A_band (mag) through each filter curve, Gordon et al. (2023) G23.

    Parameters
    ----------
    sedpy_names : sequence of str
        astro-sedpy filter names, e.g. ``'jwst_f150w'``.
    ebv : float
        E(B-V) in mag (A_V = R_V E(B-V)).
    r_v : float, optional
        R_V (G23 accepts 2.3-5.6).

    Returns
    -------
    numpy.ndarray
        A_band in mag, (n_band,); the corrected flux is ``f * 10**(0.4 * A_band)``.

    Notes
    -----
    Photon-weighted band average for a source flat in f_nu:
    A_band = -2.5 log10( int T/lambda 10^(-0.4 A_lambda) dlambda / int T/lambda dlambda ).
    Filter wavelengths outside G23's 0.0912-32 micron take the value at the nearest edge.
    """
    import astropy.units as u
    from dust_extinction.parameter_averages import G23

    model = G23(Rv=r_v)
    lo, hi = 1e4 / model.x_range[1], 1e4 / model.x_range[0]  # Angstrom
    out = np.empty(len(sedpy_names))
    for i, name in enumerate(sedpy_names):
        f = filter_curve(name)
        w, t = np.asarray(f.wavelength, float), np.asarray(f.transmission, float)
        a_lam = ebv * r_v * np.asarray(model(np.clip(w, lo * 1.0001, hi * 0.9999) * u.AA))
        wt = t / w
        out[i] = -2.5 * np.log10(np.trapezoid(wt * 10 ** (-0.4 * a_lam), w) / np.trapezoid(wt, w))
    return out
