"""Time buckets, window summaries and per-track smoothing (pure functions, no Redis)."""
