"""Backends: the `Backend` base class and handler API (`base`), the plugin hook
(`hookspecs`), the registry that loads plugins lazily (`registry`), and the built-in NumPy
reference backend (`numpy`)."""
