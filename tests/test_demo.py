"""``gccat demo``: builds the demo lake, and running it again changes nothing."""

from .conftest import snapshot


def test_demo_run_twice_is_a_no_op(demo, cli):
    """Regression: the second run failed on its own simulated inputs ('file exists')."""
    before = snapshot(demo.lake)
    version = demo.lake.version()
    res = cli("demo", "--lake", demo.lake.root)
    assert res.exit_code == 0, res.output
    assert demo.lake.version() == version
    assert snapshot(demo.lake) == before
    assert "gccat demo lake" in res.stdout
