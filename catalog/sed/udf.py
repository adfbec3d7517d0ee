"""SSP fits of rows inside a SQL query: the science behind the DuckDB function ``ssp_fit``.

:func:`ssp_fit_rows` takes rows as lists of bands, fluxes and errors (nJy) with a redshift and
returns the :data:`catalog.constants.SSP_FIT_FIELDS` per row; :mod:`catalog.queries.udfs`
adapts it to Arrow and registers it. Meant for small ad-hoc selections: ``gccat fit ssp`` is
the path for catalogs (chunks, the lake's grid cache, stored results).
"""

from __future__ import annotations

import functools

import numpy as np

from catalog import bands as bandreg
from catalog.constants import SSP_FIT_FIELDS
from catalog.errors import GccatError
from catalog.sed.fitting import fit_ssp, n_free_parameters
from catalog.sed.grids import GridSpec, SSPGrid, build_grid


@functools.lru_cache(maxsize=32)
def _cached_grid(z: float, sedpy_names: tuple[str, ...]) -> SSPGrid:
    return build_grid(z, list(sedpy_names), GridSpec().checked())  # the fits' default grid


def ssp_fit_rows(
    bands: list, fluxes: list, errors: list, z: np.ndarray, error_floor: float = 0.05
) -> dict[str, np.ndarray]:
    """SSP fits of rows given as lists of bands, fluxes and errors (nJy) at redshift ``z``.

    The in-query path (UDF ``ssp_fit``) for small ad-hoc selections; rows sharing bands and
    redshift share one grid (cached in memory). Returns :data:`SSP_FIT_FIELDS` arrays; rows
    with fewer usable bands than the fit's free parameters get NULL results (and their
    ``n_bands``), as ``gccat fit ssp`` leaves them unfitted.
    """
    n = len(z)
    out = {k: np.full(n, np.nan) for k in SSP_FIT_FIELDS}
    groups: dict[tuple, list[int]] = {}
    for i in range(n):
        if bands[i] is None or not np.isfinite(z[i]) or z[i] < 0:
            continue
        groups.setdefault((round(float(z[i]), 3), tuple(bands[i])), []).append(i)
    for (zg, bs), rows in groups.items():
        sed = []
        for b in bs:
            info = bandreg.lookup(str(b))
            if info is None:
                raise GccatError(f"ssp_fit: unknown band '{b}'")
            sed.append(info.sedpy_name)
        grid = _cached_grid(zg, tuple(sed))
        f = np.array([np.asarray(fluxes[i], float) for i in rows])
        e = np.array([np.asarray(errors[i], float) for i in rows])
        res = fit_ssp(grid, f, e, error_floor=error_floor)
        p = res.percentiles
        vals = {
            "age_gyr_p16": p["age_gyr"][:, 0],
            "age_gyr_p50": p["age_gyr"][:, 1],
            "age_gyr_p84": p["age_gyr"][:, 2],
            "log_z_p50": p["log_z"][:, 1],
            "av_p50": p["av"][:, 1],
            "log_mass_living_p16": p["log_mass_living"][:, 0],
            "log_mass_living_p50": p["log_mass_living"][:, 1],
            "log_mass_living_p84": p["log_mass_living"][:, 2],
            "log_mass_formed_p50": p["log_mass_formed"][:, 1],
            "chi2_min": res.chi2_min,
            "n_bands": res.n_bands,
        }
        too_few = res.n_bands < n_free_parameters(grid)
        for k, v in vals.items():
            out[k][rows] = v if k == "n_bands" else np.where(too_few, np.nan, v)
    return out
