"""A lake holding a simulated SIS lens (field simsis at z = 0.39, model truth), shared by the
source-plane and arc tests."""

from __future__ import annotations

from catalog.lake import Lake
from catalog.lensing import write_hff_map
from catalog.simulations.lensfield import simulate_sis_deflection
from ingest.catalog import ingest_fields
from ingest.lens import ingest_lens_maps

THETA_E, PIX, ZL = 5.0, 0.1, 0.39


def sis_lake(root):
    """(lake, alpha_x, alpha_y): the SIS deflection maps (201 x 201, 0.1") ingested as simsis/truth."""
    lake = Lake.create(root / "lake")
    (root / "fields.csv").write_text(
        "field_id,name,aliases,ra_center_deg,dec_center_deg,z_cluster,ebv_mw,kpc_per_arcsec,"
        f"pixel_scale_arcsec,bands,depth_note,source\nsimsis,SIS,,110.83,-73.45,{ZL},,,,,,simulated\n"
    )
    ingest_fields(lake, root / "fields.csv")
    ax, ay = simulate_sis_deflection(THETA_E, shape=(201, 201), pixel_scale_arcsec=PIX)
    for m in (ax, ay):
        write_hff_map(m, root / f"sis_{m.quantity}.fits")
    ingest_lens_maps(lake, sorted(root.glob("sis_*.fits")), field_id="simsis", model="truth")
    return lake, ax, ay
