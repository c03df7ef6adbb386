"""Layer 3 — MLflow: the run layout (one parent per command, one child per pair), its two
stores (MlflowClient; bench's sqlite store written with ``sqlite3``) and the child process that
does the logging off the run's thread. Imports io, api, assets; never metrics."""
