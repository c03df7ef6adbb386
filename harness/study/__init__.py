"""Layer 5 — ``bench study``: OOD grids and severity sweeps over the runner, their tables and
figures."""
