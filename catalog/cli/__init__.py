"""The ``gccat`` command line (typer): thin commands over the public API."""
