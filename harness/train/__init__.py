"""Layer 5 — ``bench train``: the generic training loop of every trainable restorer."""
