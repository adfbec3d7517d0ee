"""Readers, column mapping and ingestion of catalogs into the gccat lake."""
