"""The bundled published tables and lens-map patch (see README.md here)."""
