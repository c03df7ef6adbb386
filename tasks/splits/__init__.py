"""Committed sample lists (split files) of benchmarks without an official split.

A package (not a bare folder) so that ``[tool.setuptools.package-data] "*" = ["*.txt"]`` ships
the lists in wheels; read them with ``importlib.resources.files("tasks") / "splits" / NAME``.
"""
