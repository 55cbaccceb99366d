"""Model-free steps (dedup, export, pairs, ...): one module each, found by `registry`."""
