"""``gccat demo``: builds the demo lake, and running it again changes nothing."""

from ..conftest import snapshot


def test_demo_run_twice_is_a_no_op(demo, cli):
    """Regression: the second run failed on its own simulated inputs ('file exists')."""
    before = snapshot(demo.lake)
    version = demo.lake.version()
    res = cli("demo", "--lake", demo.lake.root)
    assert res.exit_code == 0, res.output
    assert demo.lake.version() == version
    assert snapshot(demo.lake) == before
    assert "gccat demo lake" in res.stdout


def test_demo_inputs_live_beside_the_lake_not_inside(demo):
    from ingest.demo import demo_inputs_dir

    inputs = demo_inputs_dir(demo.lake)
    assert (inputs / "simcluster_kappa.fits").is_file()
    assert not any(p.name.endswith(".fits") and "simcluster" in p.name for p in demo.lake.root.rglob("*"))
