"""Reading the lake: DuckDB connections and views, SQL, cone search, crossmatch, export."""
