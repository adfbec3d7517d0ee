"""Ingest kinds: one enum names every kind of commit, and the schema says which they are."""

import pytest

from catalog.lake import Lake
from catalog.lake.schemas import INGESTS, IngestKind


def test_every_committed_kind_is_a_member(demo):
    """Every ``ingests.kind`` the demo lake holds (catalogs, fields, bands, detections,
    photometry, lens maps, grids, fits, correlations) is an :class:`IngestKind` value."""
    kinds = set(demo.lake.ingests()["kind"].to_pylist())
    assert kinds, "the demo lake has ingests"
    assert kinds <= {k.value for k in IngestKind}
    assert {"fields", "catalog"} <= kinds


def test_kind_description_lists_every_kind():
    """The column description was 'fields, bands, catalog' while eight more kinds were stored."""
    description = INGESTS.field("kind").metadata[b"description"].decode()
    for kind in IngestKind:
        assert kind.value in description


def test_unknown_kind_is_refused_before_the_lock(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    with pytest.raises(ValueError, match="catalgo"), lake.transaction("catalgo"):
        pass
    assert lake.ingests().num_rows == 0


def test_members_compare_equal_to_stored_strings():
    assert IngestKind.LENS_MAP == "lens_map"
    assert str(IngestKind.FIT) == "fit"
