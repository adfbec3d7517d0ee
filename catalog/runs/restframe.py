"""Rows of ``restframe_results``: the rest-frame quantities of every fit.

Written by :func:`catalog.runs.fits.run_fit_ssp`, :func:`catalog.runs.fits.run_fit_stack`,
:func:`catalog.runs.fits.run_fit_sfh` and :func:`catalog.runs.nonparam.run_fit_nonparam` in
the fit's transaction, one row per fitted object (:mod:`catalog.sed.restframe`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from catalog.lake.schemas import RESTFRAME_RESULTS
from catalog.sed import fitting as sps
from catalog.sed import restframe as rf
from catalog.sed.library import filter_curve


def restframe_rows(
    run_id, ids, fields, zs, grid, bands, flux, err, upper, error_floor, res, atlas=None, templates=None
) -> pa.Table:
    """The ``restframe_results`` rows of one block of fitted objects.

    Parameters
    ----------
    run_id : str
        The fit run.
    ids, fields, zs : sequence
        Object ids, field ids and redshifts of the block.
    grid : SSPGrid or None
        The grid the block was fitted on (None for a SEDz* fit, with ``templates``).
    bands : list of str
        gccat band names in the grid's band order.
    flux, err, upper : numpy.ndarray
        (n_obj, n_band) the photometry fitted.
    error_floor : float
        The fit's error floor (which bands count as detections).
    res : FitResult, NonparamResult or dict
        The block's fit (a NonparamResult with ``atlas``, a ``fit_sfh`` dict with ``templates``).
    atlas : Atlas, optional
        The atlas of a non-parametric fit: quantities at its best-fit history.
    templates : dict, optional
        The SEDz* templates of a ``fit sfh`` block (one redshift): quantities of its best-fit
        template masses, percentiles over the perturbed refits.

    Returns
    -------
    pyarrow.Table
    """
    det = sps.usable_mask(flux, err, upper, error_floor) & ~np.asarray(upper, bool)
    if templates is not None:
        q = rf.sfh_restframe_quantities(templates, flux, det, res)
        sedpy, z_fit = templates["bands"], templates["z_obs"]
    elif atlas is None:
        q = rf.restframe_quantities(grid, flux, det, res.best_fit_params, res.samples)
        sedpy, z_fit = grid.bands, grid.z
    else:
        q = rf.history_restframe_quantities(grid, atlas, flux, det, res)
        sedpy, z_fit = grid.bands, grid.z
    n = len(ids)
    b = q.pop("lv_band_index")
    rest_um = np.array([filter_curve(s).wave_pivot for s in sedpy]) / (1 + z_fit) / 1e4
    cols = {
        "run_id": [run_id] * n,
        "object_id": list(ids),
        "field_id": list(fields),
        "z": np.asarray(zs, float),
        "lv_band": [bands[i] if i >= 0 else None for i in b],
        "lv_band_rest_um": np.where(b >= 0, rest_um[np.maximum(b, 0)], np.nan),
        **q,
        "ingest_id": [run_id] * n,
    }
    cols = {k: pa.array(v, from_pandas=True) if isinstance(v, np.ndarray) else v for k, v in cols.items()}
    return pa.table({f.name: cols[f.name] for f in RESTFRAME_RESULTS}).cast(RESTFRAME_RESULTS)
