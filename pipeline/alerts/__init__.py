"""Alert rules on emotion shares, evaluated periodically, delivered by webhook.

- :mod:`pipeline.store.models`: the frozen rule, state and event models (the store persists
  them; this stage uses the store, so they live there).
- :mod:`pipeline.alerts.webhook`: where webhooks may point (the SSRF policy) and delivery with retries.
- :mod:`pipeline.alerts.evaluator`: one evaluation pass (plain class, no Ray, no FastAPI).
- :mod:`pipeline.alerts.runner`: the background loop with a Redis lease (one evaluator at a time).
"""
