"""Python UDFs for DuckDB, all registered in :func:`register_udfs`.

Each UDF is a pure, typed numpy function of a science module (:mod:`catalog.units`,
:mod:`catalog.sky`, :mod:`catalog.lensing`, :mod:`catalog.sed`); this module only adapts Arrow
vectors to numpy and back. The table :data:`UDFS` names each function by module and attribute
and it is imported on the UDF's first call, so a connection that never samples a lens map or
fits an SED never imports astropy, healpy or the BC03 grids (``gccat sql`` starts faster).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import duckdb
import numpy as np
import pyarrow as pa

from catalog.constants import SSP_FIT_FIELDS

try:
    from duckdb.sqltypes import BIGINT, DOUBLE, INTEGER, VARCHAR
except ImportError:  # duckdb < 1.4
    from duckdb.typing import BIGINT, DOUBLE, INTEGER, VARCHAR


def _np(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return np.asarray(arr.to_pylist(), dtype=object)
    if pa.types.is_integer(arr.type) and arr.null_count == 0:
        return arr.to_numpy()
    return arr.cast(pa.float64()).to_numpy(zero_copy_only=False)


def _resolve(fn: str | Callable) -> Callable:
    """A UDF's numpy function: given, or ``"module:attribute"`` imported now."""
    if callable(fn):
        return fn
    module, _, attr = fn.partition(":")
    return getattr(importlib.import_module(module), attr)


def _vectorised(fn: str | Callable[..., np.ndarray], n_args: int, out_type: pa.DataType):
    resolved: list[Callable] = []

    def call(*cols):
        if not resolved:
            resolved.append(_resolve(fn))
        out = resolved[0](*(_np(c) for c in cols))
        return pa.array(out, type=out_type, from_pandas=True)  # NaN -> NULL

    # DuckDB reads the arity from the signature, so give each arity its own function.
    udf = {
        1: lambda a: call(a),
        2: lambda a, b: call(a, b),
        3: lambda a, b, c: call(a, b, c),
        4: lambda a, b, c, d: call(a, b, c, d),
    }[n_args]
    udf.__name__ = fn.rpartition(":")[2] if isinstance(fn, str) else fn.__name__
    return udf


def to_njy(value: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """Flux density in nJy of ``value`` in ``unit`` (astropy: nJy, mJy, MJy, 10 nJy, ABmag...).

    Units are case-sensitive (``mJy`` is 1e-9 ``MJy``). A plain ``mag`` is refused (AB or
    Vega?), as are Vega/ST magnitudes (their zero point depends on the band) and surface
    brightnesses (they need a solid angle): the query fails with the reason.
    """
    from catalog import units as photometry

    out = np.full(len(value), np.nan)
    for u in set(unit.tolist()) - {None}:
        fu = photometry.parse_flux_unit(u)  # UnitError: DuckDB reports it as the query's error
        sel = unit == u
        if fu.kind == "flux":
            out[sel] = value[sel] * fu.to_njy
        elif fu.kind == "mag" and fu.ab_offset is not None:
            out[sel] = photometry.magnitudes_to_flux(fu, value[sel])[0]
        elif fu.kind == "mag":
            raise photometry.UnitError(
                f"to_njy: unit '{u}' does not say AB: write 'ABmag' (Vega and "
                "ST magnitudes need the band's zero point: add m_AB - m first)"
            )
        else:
            raise photometry.UnitError(f"to_njy: unit '{u}' is not a flux density or AB magnitude")
    return out


def healpix_at_order(healpix29: np.ndarray, order: np.ndarray) -> np.ndarray:
    """NESTED HEALPix index at ``order`` (<= 29) from an order-29 index."""
    return np.right_shift(healpix29.astype(np.int64), 2 * (29 - order.astype(np.int64)))


def _ssp_fit_udf(bands, fluxes, errors, z):
    from catalog.sed import ssp_fit_rows

    out = ssp_fit_rows(bands.to_pylist(), fluxes.to_pylist(), errors.to_pylist(), _np(z))
    arrays = [pa.array(out[k], pa.float64(), from_pandas=True) for k in SSP_FIT_FIELDS]
    return pa.StructArray.from_arrays(arrays, names=list(SSP_FIT_FIELDS))


def _register_ssp_fit(con: duckdb.DuckDBPyConnection) -> None:
    ret = duckdb.struct_type({k: DOUBLE for k in SSP_FIT_FIELDS})
    con.create_function(
        "ssp_fit",
        _ssp_fit_udf,
        [duckdb.list_type(VARCHAR), duckdb.list_type(DOUBLE), duckdb.list_type(DOUBLE), DOUBLE],
        ret,
        type="arrow",
        null_handling="special",
        side_effects=False,
    )


def _no_lens_maps(model_id, *args) -> np.ndarray:
    return np.full(len(model_id), np.nan)


#: name -> (numpy function or "module:attribute", argument types, return type, description)
UDFS: dict[str, tuple[str | Callable, list, object, str]] = {
    "flux_to_abmag": (
        "catalog.units:flux_to_abmag",
        [DOUBLE],
        DOUBLE,
        "AB magnitude of a flux density in nJy; NULL where the flux is not positive",
    ),
    "abmag_to_flux": (
        "catalog.units:abmag_to_flux",
        [DOUBLE],
        DOUBLE,
        "Flux density in nJy of an AB magnitude",
    ),
    "flux_err_to_mag_err": (
        "catalog.units:flux_err_to_mag_err",
        [DOUBLE, DOUBLE],
        DOUBLE,
        "1-sigma AB magnitude error, 2.5/ln10 * sigma_f / f (mag)",
    ),
    "mag_err_to_flux_err": (
        "catalog.units:mag_err_to_flux_err",
        [DOUBLE, DOUBLE],
        DOUBLE,
        "1-sigma flux error in nJy, sigma_f = 0.4 ln10 f sigma_m",
    ),
    "to_njy": (
        to_njy,
        [DOUBLE, VARCHAR],
        DOUBLE,
        "Flux density in nJy of a value in a unit (astropy: nJy, mJy, MJy, 10 nJy, ABmag...)",
    ),
    "ang_sep_arcsec": (
        "catalog.sky:separation_arcsec",
        [DOUBLE, DOUBLE, DOUBLE, DOUBLE],
        DOUBLE,
        "Great-circle separation in arcsec of (ra1, dec1) and (ra2, dec2), degrees",
    ),
    "healpix29": (
        "catalog.sky:healpix29",
        [DOUBLE, DOUBLE],
        BIGINT,
        "NESTED HEALPix index at order 29 of (ra, dec) in degrees (HATS _healpix_29)",
    ),
    "healpix_at_order": (
        healpix_at_order,
        [BIGINT, INTEGER],
        BIGINT,
        "NESTED HEALPix index at order (<= 29) from an order-29 index",
    ),
    "dls_ds": (
        "catalog.lensing:dls_ds",
        [DOUBLE, DOUBLE],
        DOUBLE,
        "D_ls/D_s of a source at z_source behind a lens at z_lens (0 in front of it)",
    ),
    "magnification": (
        "catalog.lensing:magnification",
        [DOUBLE, DOUBLE],
        DOUBLE,
        "Signed magnification 1/((1-kappa)^2 - gamma^2)",
    ),
    "pc_per_arcsec": (
        "catalog.lensing:pc_per_arcsec",
        [DOUBLE],
        DOUBLE,
        "Proper parsecs per arcsec at redshift z (FlatLambdaCDM H0=70, Om0=0.3); NULL for z <= 0",
    ),
    "tangential_eigenvalue": (
        "catalog.lensing:tangential_eigenvalue",
        [DOUBLE, DOUBLE],
        DOUBLE,
        "Tangential eigenvalue of the lens Jacobian, 1 - kappa - gamma",
    ),
}

_ARROW_OUT = {DOUBLE: pa.float64(), BIGINT: pa.int64()}

UDF_DOCS = {name: doc for name, (_, _, _, doc) in UDFS.items()}
UDF_DOCS["ssp_fit"] = (
    "SSP fit in a query: ssp_fit(bands[], fluxes_njy[], errors_njy[], z) -> "
    "struct of age/log Z/A_V/mass percentiles (small selections; batch: gccat fit)"
)
UDF_DOCS["lens_value"] = (
    "Lens-map value (model_id, quantity, ra, dec): bilinear in pixel space via the WCS; NULL off the map"
)
UDF_DOCS["lens_mu_pixel_change"] = (
    "Largest fractional change of mu one map pixel away (model_id, "
    "ra, dec, dls_ds_scale); inf where a critical curve is closer "
    "than a pixel; NULL off the map"
)


def register_udfs(con: duckdb.DuckDBPyConnection, lens_store=None) -> None:
    """Register every gccat UDF on ``con`` (vectorised Arrow UDFs, no side effects).

    ``lens_store`` (a :class:`catalog.queries.lensmaps.LensMapStore`) backs ``lens_value``; without
    it the UDF returns NULL.
    """
    udfs = {name: (fn, args, ret) for name, (fn, args, ret, _) in UDFS.items()}
    sample = lens_store.sample if lens_store is not None else _no_lens_maps
    change = lens_store.mu_pixel_change if lens_store is not None else _no_lens_maps
    udfs["lens_value"] = (sample, [VARCHAR, VARCHAR, DOUBLE, DOUBLE], DOUBLE)
    udfs["lens_mu_pixel_change"] = (change, [VARCHAR, DOUBLE, DOUBLE, DOUBLE], DOUBLE)
    _register_ssp_fit(con)
    for name, (fn, args, ret) in udfs.items():
        con.create_function(
            name,
            _vectorised(fn, len(args), _ARROW_OUT[ret]),
            args,
            ret,
            type="arrow",
            null_handling="special",
            side_effects=False,
        )
