"""Lens models in the lake: rebuild maps from ``lens_map_pixels`` and sample them at sources.

The SQL UDF ``lens_value(model_id, quantity, ra, dec)`` is backed by a :class:`LensMapStore`
made for each connection, so a query samples the maps of the lake version it reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from catalog.lake import Lake

if TYPE_CHECKING:  # astropy comes with lensing: imported when a map is first read
    from catalog.lensing import LensMap


class LensMapStore:
    """Lens maps of a lake version, loaded on first use and kept in memory.

    Parameters
    ----------
    lake : Lake
    as_of : int, optional
        Lake version (default: latest).
    """

    def __init__(self, lake: Lake, as_of: int | None = None):
        self.lake = lake
        self.as_of = as_of
        self._models: pa.Table | None = None
        self._maps: dict[tuple[str, str], LensMap | None] = {}

    def models(self) -> pa.Table:
        """Live rows of ``lens_models``."""
        if self._models is None:
            self._models = self.lake.live("lens_models", self.as_of)
        return self._models

    def load(self, model_id: str, quantity: str) -> LensMap | None:
        """The map of ``quantity`` in ``model_id``, or None if the model has no such map."""
        key = (model_id, quantity)
        if key not in self._maps:
            self._maps[key] = self._read(model_id, quantity)
        return self._maps[key]

    def _read(self, model_id: str, quantity: str) -> LensMap | None:
        from astropy.io import fits
        from astropy.wcs import WCS

        m = self.models()
        row = m.filter(pc.and_(pc.equal(m["model_id"], model_id), pc.equal(m["quantity"], quantity)))
        if row.num_rows == 0:
            return None
        meta = row.slice(0, 1).to_pylist()[0]
        px = self.lake.read(
            "lens_map_pixels",
            filters=(pc.field("model_id") == model_id)
            & (pc.field("quantity") == quantity)
            & (pc.field("ingest_id") == meta["ingest_id"]),
            columns=["ix", "iy", "value"],
        )
        data = np.full((meta["ny"], meta["nx"]), np.nan)
        data[px["iy"].to_numpy(), px["ix"].to_numpy()] = px["value"].to_numpy(zero_copy_only=False)
        header = fits.Header.fromstring(meta["wcs_header"])
        from catalog.lensing import LensMap

        return LensMap(quantity, data, WCS(header), header, meta["source_path"])

    def sample(
        self, model_id: np.ndarray, quantity: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray
    ) -> np.ndarray:
        """Map values at (ra, dec) in degrees by bilinear interpolation; NaN off the map."""
        from catalog.lensing import sample_map

        out = np.full(len(ra_deg), np.nan)
        keys = np.char.add(np.char.add(model_id.astype(str), "\x1f"), quantity.astype(str))
        for key in np.unique(keys):
            mid, q = key.split("\x1f")
            lens_map = self.load(mid, q)
            if lens_map is None:
                continue
            sel = keys == key
            out[sel] = sample_map(lens_map, ra_deg[sel], dec_deg[sel])
        return out

    def mu_pixel_change(
        self, model_id: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray, dls_ds_scale: np.ndarray
    ) -> np.ndarray:
        """:func:`catalog.lensing.mu_pixel_change` of each model's kappa and gamma maps."""
        from catalog.lensing import mu_pixel_change

        out = np.full(len(ra_deg), np.nan)
        ids = model_id.astype(str)
        for mid in np.unique(ids):
            kappa, gamma = self.load(mid, "kappa"), self.load(mid, "gamma")
            if kappa is None or gamma is None:
                continue
            sel = ids == mid
            out[sel] = mu_pixel_change(kappa, gamma, ra_deg[sel], dec_deg[sel], dls_ds_scale[sel])
        return out
