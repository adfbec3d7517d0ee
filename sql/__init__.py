"""The SQL views, one file each (installed as the package ``catalog.sql``)."""
