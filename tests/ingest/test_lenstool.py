"""Lenstool multiple-image and cluster-member files into the lake."""

from __future__ import annotations

import pytest

from catalog.errors import GccatError
from catalog.lake import Lake
from ingest.demo import bundled
from ingest.lenstool import ingest_cluster_members, ingest_multiple_images, normalise_label

IMAGES = bundled("smacs0723_multiple_images.txt")
MEMBERS = bundled("smacs0723_cluster_members.txt")


@pytest.fixture
def lake(tmp_path):
    return Lake.create(tmp_path / "lake")


def test_real_file_ingests_all_49_images_with_text_labels(lake):
    r = ingest_multiple_images(lake, IMAGES, field_id="smacs0723")
    assert r.n_rows == 49
    t = lake.live("multiple_images")
    assert t.num_rows == 49
    rows = {x["image_label"]: x for x in t.to_pylist()}
    sparkler = [rows[k] for k in ("2.1", "2.2", "2.3")]
    assert all(x["family_id"] == "2" and x["z"] == pytest.approx(1.3782) for x in sparkler)
    assert sparkler[0]["ra"] == pytest.approx(110.838463) and sparkler[0]["dec"] == pytest.approx(-73.451023)
    assert (
        sparkler[0]["pos_err_a_arcsec"] == 0.5
        and sparkler[0]["image_id"] == "smacs0723/smacs0723_multiple_images/2.1"
    )
    # family 10 carries labels 12.x: the label is the file's last column, not the family
    assert rows["12.1"]["family_id"] == "10"
    assert len(set(rows)) == 49
    assert ingest_multiple_images(lake, IMAGES, field_id="smacs0723").skipped


def test_cluster_members_ingest(lake):
    r = ingest_cluster_members(lake, MEMBERS, field_id="smacs0723")
    t = lake.live("cluster_members").to_pylist()
    assert r.n_rows == len(t) == 62
    first = next(x for x in t if x["source_id"] == "11")
    assert first["mag"] == pytest.approx(17.6631) and first["ellipticity"] == pytest.approx(0.001)


def test_labels_are_text():
    assert normalise_label("1.100000") == "1.1"
    assert normalise_label("1.10") == "1.10" and normalise_label("1.1") == "1.1"
    assert normalise_label("2.000000") == "2" and normalise_label("3a") == "3a"


def _line(fam="2", ra="110.8", dec="-73.45", z="1.4", label="2.1"):
    return f"{fam} 1 {ra} {dec} {z} 0.5 0.5 0 0 0 0 {label}\n"


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        ([_line(), "2 1 110.8 -73.45 1.4 0.5\n"], "line 2: 6 columns where the first row has 12"),
        ([_line(), _line(ra="abc", label="2.2")], r"column 3 \(ra\), line 2: 'abc' is not a number"),
        ([_line(z="-1")], "column z, line 1"),
        ([_line(), _line(z="nan", label="2.2")], "column z, line 2"),
        ([_line(dec="-95")], "column dec, line 1"),
        ([_line(), _line(label="2.100000")], "column label, line 2: image '2.1' is also on line 1"),
        (["#REFERENCE 3 110.8 -73.45\n", _line()], "relative to a reference point"),
    ],
)
def test_bad_files_name_file_column_and_row_and_leave_the_lake(lake, tmp_path, lines, match):
    bad = tmp_path / "bad.txt"
    bad.write_text("".join(lines))
    v = lake.version()
    with pytest.raises(GccatError, match=match) as exc:
        ingest_multiple_images(lake, bad, field_id="f1")
    assert "bad.txt" in str(exc.value)
    assert lake.version() == v and lake.live("multiple_images").num_rows == 0


def test_z_zero_is_unknown_and_lenstool_arclet_layout(lake, tmp_path):
    f = tmp_path / "arcs.txt"
    f.write_text("#REFERENCE 0\n1.1 110.80 -73.45 0.3 0.2 10 0 25\n1.10 110.81 -73.46 0.3 0.2 10 2.0 25\n")
    ingest_multiple_images(lake, f, field_id="f1")
    t = {x["image_label"]: x for x in lake.live("multiple_images").to_pylist()}
    assert set(t) == {"1.1", "1.10"}
    assert t["1.1"]["z"] is None and t["1.10"]["z"] == 2.0 and t["1.1"]["family_id"] == "1"
