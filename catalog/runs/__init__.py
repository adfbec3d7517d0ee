"""Computations that read the lake and write their results back: fits and correlations."""
