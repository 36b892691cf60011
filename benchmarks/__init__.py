"""Benchmarks and experiments of nirbridge (not part of the installed package)."""
