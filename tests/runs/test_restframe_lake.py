"""Rest-frame quantities written by the fit runs: one restframe_results row per fitted object."""

import numpy as np

from catalog.queries.connection import connect


def test_ssp_and_stack_runs_write_restframe_rows(demo):
    con = connect(demo.lake)
    runs = con.sql("SELECT run_id, kind, n_objects FROM fit_runs WHERE kind IN ('ssp', 'stack')").fetchall()
    assert {k for _, k, _ in runs} == {"ssp", "stack"}
    for run_id, _, n in runs:
        sql = "SELECT count(*) FROM restframe_results WHERE run_id = ?"
        got = con.execute(sql, [run_id]).fetchall()[0][0]
        assert got == n
    df = con.sql(
        "SELECT r.*, p.best_fit_value FROM restframe_results r JOIN fit_posteriors p "
        "USING (run_id, object_id) WHERE p.parameter = 'log_mass_living'"
    ).df()
    # route 1 is the fit's best-fit living mass; route 2 agrees with it to a band's residual
    np.testing.assert_allclose(df["log_mass_living_sed"], df["best_fit_value"])
    diff = df["log_mass_living_ml"] - df["log_mass_living_sed"]
    assert abs(np.nanmedian(diff)) < 0.1
    assert set(df["lv_band"].dropna()) == {"F090W"}  # z = 0.39: rest-frame V in F090W
    np.testing.assert_allclose(df["abs_V_vega"] - df["abs_V_ab"], -0.005, atol=0.01)
    np.testing.assert_allclose(df["color_bi_vega"], df["abs_B_vega"] - df["abs_I_vega"])
    assert (df["ml_v"] > 0).all()
    stack = df[df["object_id"].str.startswith("stack:")]
    assert len(stack) == 1 and np.isfinite(stack["ml_v_p16"]).all()


def test_plot_colors_draws_both_diagrams(demo, tmp_path, cli):
    for diagram in ("uvj", "bi-vi"):
        out = tmp_path / f"{diagram}.png"
        res = cli("plot", "colors", "--diagram", diagram, "--out", out, "--lake", demo.lake.root)
        assert res.exit_code == 0, res.output
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = cli(
        "plot", "colors", "20000101T000000-00000000", "--out", tmp_path / "x.png", "--lake", demo.lake.root
    )
    assert res.exit_code != 0 and "no rest-frame results" in res.output


def test_nonparam_runs_write_restframe_rows(demo, tmp_path):
    import shutil

    from catalog.lake import Lake
    from catalog.runs.nonparam import run_fit_nonparam

    shutil.copytree(demo.lake.root, tmp_path / "lake")
    lake = Lake(tmp_path / "lake")
    out = run_fit_nonparam(lake, "field_id = 'smacs0723' AND source_id < 'SC_003'", n_atlas=300, n_draws=20)
    con = connect(lake)
    df = con.execute("SELECT * FROM restframe_results WHERE run_id = ?", [out["run_id"]]).df()
    assert len(df) == out["n_objects"] == 3
    assert np.isfinite(df["ml_v"]).all() and np.isfinite(df["abs_V_ab"]).all()
    assert df["ml_v_p16"].isna().all()  # no percentiles for atlas fits
