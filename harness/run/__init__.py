"""Layer 4 — ``bench run``: identities and units, the plan, executors (local, Ray), timing,
aggregation, the reducer and the runner that joins them (plan → execute → reduce)."""
