"""Alert rules on emotion shares, evaluated periodically, delivered by webhook.

- :mod:`pipeline.alerts.models`: the frozen rule and event models.
- :mod:`pipeline.alerts.webhook`: URL validation and delivery with retries.
- :mod:`pipeline.alerts.evaluator`: one evaluation pass (plain class, no Ray, no FastAPI).
- :mod:`pipeline.alerts.runner`: the background loop with a Redis lease (one evaluator at a time).
"""
