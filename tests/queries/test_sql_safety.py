"""No input runs SQL beyond one read-only query: catalog headers, SQL strings, --where/--from.

Each escape class of the security review has a case here; every one must end in exit code 2
with one line, no file written anywhere, and a lake whose files and versions are unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog.errors import GccatError
from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.queries.sandbox import check_read_only_sql, condition_sql, sandboxed_connection
from ingest.catalog import ingest_catalog

from ..conftest import snapshot


def _hostile_queries(lake_root: Path, out: Path) -> list[str]:
    log = lake_root / "ingests" / "_delta_log" / "00000000000000000099.json"
    a_data_file = next((lake_root / "detections").rglob("*.parquet"))
    return [
        # EXPLAIN ANALYZE runs what it explains: the review bricked a lake with this.
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{log}'",
        f"EXPLAIN ANALYZE COPY (SELECT 0 AS ra) TO '{a_data_file}' (USE_TMP_FILE false)",
        f"COPY (SELECT 1) TO '{out}'",
        f"COPY (SELECT 1) TO '{lake_root}/x.csv'",
        f"COPY (SELECT 0 AS ra) TO '{a_data_file}' (USE_TMP_FILE false)",
        f"EXPORT DATABASE '{out.parent / 'exported'}'",
        f"ATTACH '{out.parent / 'attached.db'}' AS x",
        "ATTACH ':memory:' AS x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "SET VARIABLE x = 1",
        "PRAGMA enable_profiling",
        "CALL pragma_version()",
        "CREATE TABLE t AS SELECT 1",
        "CREATE MACRO m() AS 1",
        "USE memory",
        "CHECKPOINT",
        f"SELECT 1; COPY (SELECT 1) TO '{out}'",
        "SELECT 1; SELECT 2",
        f"SELECT * FROM query('COPY (SELECT 1) TO ''{out}''')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        f"SELECT * FROM read_text('{lake_root}/.gccat-lake.json')",
        f"SELECT * FROM read_json_auto('{lake_root}/ingests/_delta_log/00000000000000000000.json')",
        "SELECT * FROM duckdb_secrets()",
        "",
    ]


def _assert_one_line_refusal(res, what):
    assert res.exit_code == 2, (what, res.output)
    assert "Traceback" not in res.output, what
    assert len(res.stderr.strip().splitlines()) == 1, (what, res.stderr)
    assert res.stderr.strip().startswith("gccat: error:"), (what, res.stderr)


def _nothing_written(tmp: Path):
    assert not (tmp / "owned.csv").exists()
    assert not (tmp / "exported").exists()
    assert not (tmp / "attached.db").exists()


def test_gccat_sql_refuses_every_escape_class(demo, tmp_path, cli):
    before = snapshot(demo.lake)
    out = tmp_path / "owned.csv"
    for q in _hostile_queries(demo.lake.root, out):
        _assert_one_line_refusal(cli("sql", q, "--lake", demo.lake.root), q)
    _nothing_written(tmp_path)
    assert snapshot(demo.lake) == before
    assert not list(Path.cwd().glob(".tmp*")), "DuckDB spilled into the working directory"
    # Reading still works, including EXPLAIN of a SELECT.
    res = cli(
        "sql", "SELECT count(*) AS n FROM detections WHERE field_id = 'smacs0723'", "--lake", demo.lake.root
    )
    assert res.exit_code == 0 and "178" in res.stdout
    res = cli("sql", "EXPLAIN SELECT * FROM detections", "--lake", demo.lake.root)
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("option", ["cone", "export", "xmatch"])
def test_every_option_that_takes_sql_is_read_only(demo, tmp_path, cli, option):
    before = snapshot(demo.lake)
    out = tmp_path / "owned.csv"
    for q in _hostile_queries(demo.lake.root, out):
        if not q:
            continue
        if option == "cone":
            args = ["cone", "110.8", "-73.45", "5", "--from", q]
        elif option == "export":
            args = ["export", "--query", q, "--out", tmp_path / "e.parquet"]
        else:
            args = ["xmatch", "detections", q, "--radius", "1"]
        _assert_one_line_refusal(cli(*args, "--lake", demo.lake.root), (option, q))
    _nothing_written(tmp_path)
    assert not (tmp_path / "e.parquet").exists()
    assert snapshot(demo.lake) == before


HOSTILE_WHERE = [
    "1=1) UNION (SELECT 1",
    "1=1; COPY (SELECT 1) TO '{out}'",
    "true) --",
    "(SELECT count(*) FROM read_text('/etc/passwd')) > 0",
    "field_id = 'smacs0723' AND (SELECT count(*) FROM glob('/etc/*')) > 0",
]


def test_where_options_take_one_condition_and_read_only_the_lake(demo, tmp_path, cli):
    before = snapshot(demo.lake)
    out = tmp_path / "owned.csv"
    for w in HOSTILE_WHERE:
        w = w.format(out=out)
        for args in (
            ["fit", "ssp", "--where", w],
            ["fit", "stack", "--where", w],
            ["fit", "sfh", "--where", w],
            [
                "correlate",
                "--field",
                "simcluster",
                "--model",
                "truth",
                "--where",
                w,
                "--plots",
                tmp_path / "plots",
            ],
        ):
            _assert_one_line_refusal(cli(*args, "--lake", demo.lake.root), (args, w))
    _nothing_written(tmp_path)
    assert snapshot(demo.lake) == before


def test_condition_sql_renders_the_parsed_expression():
    assert condition_sql("mag_F150W < 27 -- bright") == "(mag_F150W < 27)"
    assert condition_sql(None) is None
    for bad in ("1=1) OR (1=1", "1; SELECT 2", "x = 1) --"):
        with pytest.raises(GccatError, match="one SQL condition"):
            condition_sql(bad)


def test_the_statement_check_alone_refuses_writes():
    con = sandboxed_connection()
    assert check_read_only_sql(con, "SELECT 1") == "SELECT 1"
    assert check_read_only_sql(con, "explain select 1") == "explain select 1"
    for q in (
        "EXPLAIN ANALYZE SELECT 1",
        "EXPLAIN /* x */ ANALYZE COPY (SELECT 1) TO 'x'",
        "PIVOT (SELECT 1 AS a, 'x' AS b) ON b USING sum(a)",
        "SHOW TABLES; SELECT 1",
    ):
        with pytest.raises(GccatError):
            check_read_only_sql(con, q)


def test_the_sandbox_alone_refuses_files(tmp_path):
    """Even a statement that got past the check could not reach the file system."""
    con = connect(Lake.create(tmp_path / "lake"))
    for q in (
        f"COPY (SELECT 1) TO '{tmp_path}/owned.csv'",
        "SELECT * FROM read_text('/etc/passwd')",
        "SET enable_external_access = true",
        "LOAD httpfs",
    ):
        with pytest.raises(Exception, match="(?i)permission|locked|disabled"):
            con.execute(q)
    assert not (tmp_path / "owned.csv").exists()


def test_column_names_never_become_sql(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    owned = tmp_path / "owned.csv"
    hostile = [
        f"x\" := 1)) AS j FROM extra; COPY (SELECT 1) TO '{owned}'; SELECT to_json(struct_pack(\"y",
        "z\" := read_text('/etc/passwd'))) AS j FROM extra; --",
        'say "hello"',
        "it's",
        "a,b",
    ]
    header = "id,ra,dec,flux_F150W,fluxerr_F150W," + ",".join(
        '"' + h.replace('"', '""') + '"' for h in hostile
    )
    p = tmp_path / "cat.csv"
    p.write_text(header + "\n" + "a,110.8,-73.45,10,1," + ",".join(str(i) for i in range(5)) + "\n")
    before = snapshot(lake)
    ingest_catalog(lake, p, field_id="smacs0723", name="hostile")
    assert not owned.exists()
    extra = json.loads(connect(lake).execute("SELECT extra FROM detections").fetchall()[0][0])
    assert sorted(extra) == sorted(hostile)  # the names are kept, as JSON keys
    assert extra["it's"] == 3
    assert "root:" not in json.dumps(extra)
    assert snapshot(lake) != before
