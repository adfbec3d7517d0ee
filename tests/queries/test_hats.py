"""HATS both ways: exports carry units, UCDs and descriptions; cone and xmatch read HATS input."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy import units as u

import catalog
from catalog.lake.schemas import columns_meta
from catalog.queries.connection import open_reader
from catalog.queries.export import format_unit
from catalog.queries.search import cone
from catalog.sky import separation_arcsec

CENTRE = (110.8, -73.45)
N = 400


def _positions(seed: int, n: int, spread_deg: float = 0.02):
    rng = np.random.default_rng(seed)
    ra = CENTRE[0] + rng.uniform(-spread_deg, spread_deg, n) / np.cos(np.radians(CENTRE[1]))
    dec = CENTRE[1] + rng.uniform(-spread_deg, spread_deg, n)
    return ra, dec


@pytest.fixture
def small(tmp_path):
    """A lake of N detections (with F150W photometry) and a CSV of positions near half of them."""
    ra, dec = _positions(0, N)
    csv = tmp_path / "cat.csv"
    csv.write_text(
        "id,ra,dec,flux_F150W,fluxerr_F150W\n"
        + "".join(
            f"s{i},{float(r)!r},{float(d)!r},{10.0 + i},1.0\n"
            for i, (r, d) in enumerate(zip(ra, dec, strict=True))
        )
    )
    lake = catalog.init_lake(tmp_path / "lake")
    catalog.ingest_catalog(lake, csv, field_id="f1", name="c")
    rng = np.random.default_rng(1)
    pick = rng.choice(N, N // 2, replace=False)
    jitter = 0.3 / 3600
    other = tmp_path / "mine.csv"
    other.write_text(
        "source_id,ra,dec\n"
        + "".join(
            f"m{k},{ra[i] + rng.normal(0, jitter):.10f},{dec[i] + rng.normal(0, jitter):.10f}\n"
            for k, i in enumerate(pick)
        )
    )
    return lake, other


def _export_hats(cli, lake, out, *what):
    res = cli("export", *what, "--format", "hats", "--out", out, "--lake", lake.root)
    assert res.exit_code == 0, res.output
    return out


def _schemas(out, name):
    """Every place a reader finds the schema of the HATS export ``out`` of catalog ``name``."""
    import hats

    main = out / name
    leaves = sorted((main / "dataset").rglob("Npix=*.parquet"))
    assert leaves
    found = {f"leaf {p.name}": pq.read_schema(p) for p in leaves}
    found["_common_metadata"] = pq.read_schema(main / "dataset" / "_common_metadata")
    found["_metadata"] = pq.read_schema(main / "dataset" / "_metadata")
    found["hats.read_hats"] = hats.read_hats(out).main_catalog.schema
    # lsdb.open_catalog rebuilds its schema from pandas dtypes (no field metadata): LSDB users
    # find the metadata in the catalog info (the hats.properties entries), tested below
    for margin in hats.read_hats(out).all_margins or []:  # the margin is written too
        found[f"margin {margin}"] = pq.read_schema(out / margin / "dataset" / "_common_metadata")
    return found


def _vo(unit: str) -> str:
    return format_unit(unit, "vounit") if unit else ""


def test_hats_export_keeps_units_ucds_descriptions_and_validates(small, tmp_path, cli):
    import lsdb
    from hats.io.validation import is_valid_catalog

    lake, _ = small
    out = _export_hats(cli, lake, tmp_path / "det_hats", "--table", "detections")
    assert is_valid_catalog(out, strict=True)
    names = [n for n in pq.read_schema(next((out / "det_hats" / "dataset").rglob("Npix=*.parquet"))).names]
    declared = columns_meta([n for n in names if n != "_healpix_29"], "detections")
    assert declared["ra"].unit == "deg" and declared["detection_id"].ucd
    for where, schema in _schemas(out, "det_hats").items():
        for name, m in declared.items():
            md = {k.decode(): v.decode() for k, v in (schema.field(name).metadata or {}).items()}
            assert md.get("unit", "") == _vo(m.unit), (where, name)
            assert md.get("ucd", "") == m.ucd, (where, name)
            assert md.get("description", "") == m.description, (where, name)
        idx = schema.field("_healpix_29").metadata
        assert idx[b"ucd"] == b"pos.healpix", where
    props = lsdb.open_catalog(out).hc_structure.catalog_info.extra_dict()
    for name, m in declared.items():
        for key in ("unit", "ucd", "description"):
            value = _vo(m.unit) if key == "unit" else getattr(m, key)
            assert props.get(f"gccat_{key}.{name}", "") == value, (name, key)
    assert lsdb.open_catalog(out).compute().shape[0] == N


def test_hats_units_are_vounit_and_log_units_are_log(small, tmp_path, cli):
    from hats.io.validation import is_valid_catalog

    lake, _ = small
    query = "SELECT detection_id, ra, dec, 8.5 AS log_mass_living, 2.0 AS age_gyr FROM detections"
    out = _export_hats(cli, lake, tmp_path / "mass", "--query", query)
    assert is_valid_catalog(out, strict=True)
    for where, schema in _schemas(out, "mass").items():
        assert schema.field("log_mass_living").metadata[b"unit"] == b"log(solMass)", where
        assert schema.field("age_gyr").metadata[b"unit"] == b"Gyr", where
        assert schema.field("ra").metadata[b"unit"] == b"deg", where
    assert format_unit("arcsec-2", "vounit") == "arcsec**-2"
    assert u.Unit(format_unit("solMass/yr", "vounit"), format="vounit") == u.solMass / u.yr
    assert format_unit("dex(solMass)", "fits") == "log(solMass)"


def _ids_seps(t, id_col="detection_id"):
    return sorted(zip(t[id_col].to_pylist(), np.round(t["separation_arcsec"].to_numpy(), 9), strict=True))


def test_cone_over_hats_gives_the_rows_of_the_lake(small, tmp_path, cli):
    lake, _ = small
    out = _export_hats(cli, lake, tmp_path / "det_hats", "--table", "detections")
    _, con, _ = open_reader(lake, None, "detections")
    for radius in (5.0, 30.0, 0.01):
        want = cone(con, *CENTRE, radius, "detections")
        got = cone(con, *CENTRE, radius, str(out))
        assert _ids_seps(got) == _ids_seps(want)
        assert got["separation_arcsec"].to_pylist() == sorted(got["separation_arcsec"].to_pylist())
        for c in ("ra", "dec", "healpix29", "source_id"):
            assert dict(zip(got["detection_id"].to_pylist(), got[c].to_pylist(), strict=True)) == dict(
                zip(want["detection_id"].to_pylist(), want[c].to_pylist(), strict=True)
            )
    assert len(cone(con, *CENTRE, 30.0, str(out))) > 10
    res = cli(
        "cone", *map(str, CENTRE), "30", "--from", out, "-o", tmp_path / "c.parquet", "--lake", lake.root
    )
    assert res.exit_code == 0, res.output
    assert _ids_seps(pq.read_table(tmp_path / "c.parquet")) == _ids_seps(
        cone(con, *CENTRE, 30.0, "detections")
    )


def _partitioned_hats(tmp_path, n=3000):
    """A HATS catalog over two distant sky regions, many small partitions."""
    import lsdb
    import pandas as pd

    ra1, dec1 = _positions(5, n // 2, 0.5)
    ra2, dec2 = ra1 + 100.0, dec1 + 60.0
    df = pd.DataFrame(
        {
            "RAJ2000": np.concatenate([ra1, ra2]),
            "DEJ2000": np.concatenate([dec1, dec2]),
            "oid": np.arange(n),
        }
    )
    out = tmp_path / "two_regions"
    cat = lsdb.from_dataframe(
        df,
        ra_column="RAJ2000",
        dec_column="DEJ2000",
        catalog_name="two",
        partition_rows=200,
        highest_order=12,
    )
    cat.write_catalog(out, catalog_name="two", progress_bar=False)
    return out, df


def test_cone_reads_only_the_partitions_that_overlap_it(small, tmp_path):
    import hats

    lake, _ = small
    out, df = _partitioned_hats(tmp_path)
    main = hats.read_hats(out).main_catalog
    far = main.filter_by_cone(CENTRE[0] + 100.0, CENTRE[1] + 60.0, 3600.0)
    near = set(map(str, main.filter_by_cone(*CENTRE, 60.0).get_pixel_paths()))
    assert len(main.get_healpix_pixels()) > 4 and len(near) < len(main.get_healpix_pixels())
    for p in far.get_pixel_paths():  # partitions away from the cone are not even opened
        assert str(p) not in near
        with open(str(p), "wb") as f:
            f.write(b"not parquet")
    _, con, _ = open_reader(lake, None, "detections")
    got = cone(con, *CENTRE, 60.0, str(out))
    sep = separation_arcsec(df["RAJ2000"].to_numpy(), df["DEJ2000"].to_numpy(), *CENTRE)
    assert sorted(got["oid"].to_pylist()) == sorted(df["oid"][sep <= 60.0].tolist())
    assert {"ra", "dec", "healpix29"} <= set(got.column_names) and "RAJ2000" not in got.column_names
    with pytest.raises(catalog.GccatError, match="cannot read the HATS catalog"):
        cone(con, CENTRE[0] + 100.0, CENTRE[1] + 60.0, 60.0, str(out))


def _pairs(path):
    t = pq.read_table(path)
    return sorted(
        zip(
            t["detection_id_1"].to_pylist(),
            t["source_id_2"].to_pylist(),
            np.round(t["separation_arcsec"].to_numpy(), 9),
            strict=True,
        )
    )


def test_xmatch_takes_hats_on_either_side_with_the_pairs_of_the_lake(small, tmp_path, cli):
    lake, mine = small
    det = _export_hats(cli, lake, tmp_path / "det_hats", "--table", "detections")
    mine_hats = tmp_path / "mine_hats"
    res = cli(
        "xmatch", "detections", mine, "--radius", "1.0", "-o", tmp_path / "lake.parquet", "--lake", lake.root
    )
    assert res.exit_code == 0, res.output
    want = _pairs(tmp_path / "lake.parquet")
    assert len(want) >= N // 2 - 5
    res = cli("xmatch", det, mine, "--radius", "1.0", "-o", tmp_path / "h1.parquet", "--lake", lake.root)
    assert res.exit_code == 0, res.output
    assert _pairs(tmp_path / "h1.parquet") == want
    # the other side as HATS too (built by LSDB from the CSV), and both sides HATS
    import lsdb
    import pandas as pd

    lsdb.from_dataframe(
        pd.read_csv(mine), ra_column="ra", dec_column="dec", catalog_name="mine"
    ).write_catalog(mine_hats, catalog_name="mine", progress_bar=False)
    for left in ("detections", str(det)):
        out = tmp_path / f"h_{len(left)}.parquet"
        res = cli("xmatch", left, mine_hats, "--radius", "1.0", "-o", out, "--lake", lake.root)
        assert res.exit_code == 0, res.output
        assert _pairs(out) == want
    res = cli(
        "xmatch",
        mine_hats,
        "detections",
        "--radius",
        "1.0",
        "-o",
        tmp_path / "r.parquet",
        "--lake",
        lake.root,
    )
    assert res.exit_code == 0, res.output
    t = pq.read_table(tmp_path / "r.parquet")
    sep = t["separation_arcsec"].to_numpy()
    got = sorted(zip(t["detection_id_2"].to_pylist(), t["source_id_1"].to_pylist(), sep, strict=True))
    assert [g[:2] for g in got] == [w[:2] for w in want]  # the sides swapped: the same pairs
    np.testing.assert_allclose([g[2] for g in got], [w[2] for w in want], rtol=0, atol=1e-8)


def test_not_hats_and_no_coordinates_are_one_line_errors(small, tmp_path, cli):
    lake, mine = small
    plain = tmp_path / "plain_dir"
    plain.mkdir()
    (plain / "x.txt").write_text("hello")
    res = cli("cone", *map(str, CENTRE), "5", "--from", plain, "--lake", lake.root)
    assert res.exit_code == 2
    assert "is not a HATS catalog" in res.output and len(res.output.strip().splitlines()) == 1
    res = cli("xmatch", "detections", plain, "--lake", lake.root)
    assert res.exit_code == 2 and "is not a HATS catalog" in res.output
    det = _export_hats(cli, lake, tmp_path / "det_hats", "--table", "detections")
    for name in ("hats.properties", "properties"):
        p = det / "det_hats" / name
        p.write_text(
            "\n".join(line for line in p.read_text().splitlines() if not line.startswith("hats_col_ra"))
        )
    for args in (("cone", *map(str, CENTRE), "5", "--from", det), ("xmatch", det, mine)):
        res = cli(*args, "--lake", lake.root)
        assert res.exit_code == 2, res.output
        assert "lacks coordinates" in res.output and len(res.output.strip().splitlines()) == 1
    for name in ("hats.properties", "properties"):
        p = det / "det_hats" / name
        p.write_text(p.read_text() + "\nhats_col_ra=nowhere\n")
    res = cli("cone", *map(str, CENTRE), "5", "--from", det, "--lake", lake.root)
    assert res.exit_code == 2 and "lacks coordinates" in res.output and "'nowhere'" in res.output


def test_xmatch_engine_lsdb_gives_the_pairs_of_the_in_process_match(small, tmp_path, cli):
    lake, mine = small
    det = _export_hats(cli, lake, tmp_path / "det_hats", "--table", "detections")
    import lsdb
    import pandas as pd

    mine_hats = tmp_path / "mine_hats"
    lsdb.from_dataframe(
        pd.read_csv(mine), ra_column="ra", dec_column="dec", catalog_name="mine"
    ).write_catalog(mine_hats, catalog_name="mine", progress_bar=False)
    for best in ((), ("--best",)):
        out = {}
        for engine in ("gccat", "lsdb"):
            out[engine] = tmp_path / f"{engine}{len(best)}.parquet"
            args = ("xmatch", "detections", mine_hats, "--radius", "1.0", *best, "--engine", engine)
            res = cli(*args, "-o", out[engine], "--lake", lake.root)
            assert res.exit_code == 0, res.output
        want, got = _pairs(out["gccat"]), _pairs(out["lsdb"])
        assert len(want) >= N // 2 - 5
        assert [g[:2] for g in got] == [w[:2] for w in want]
        np.testing.assert_allclose([g[2] for g in got], [w[2] for w in want], rtol=0, atol=1e-6)
        assert pq.read_schema(out["lsdb"]).names == pq.read_schema(out["gccat"]).names
    # self-match of the export: every detection finds itself
    res = cli(
        "xmatch",
        "detections",
        det,
        "--radius",
        "0.1",
        "--best",
        "--engine",
        "lsdb",
        "-o",
        tmp_path / "self.parquet",
        "--lake",
        lake.root,
    )
    assert res.exit_code == 0, res.output
    t = pq.read_table(tmp_path / "self.parquet")
    assert t.num_rows == N and t["detection_id_1"].to_pylist() == t["detection_id_2"].to_pylist()
    res = cli("xmatch", "detections", mine, "--engine", "lsdb", "--lake", lake.root)
    assert res.exit_code == 2 and "is not a HATS catalog" in res.output
