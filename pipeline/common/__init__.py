"""Code that several stages share and that belongs to none of them.

- :mod:`pipeline.common.urls`: credential redaction of URLs (camera sources, webhooks, Redis).
- :mod:`pipeline.common.netpolicy`: where a user-given URL may point (the SSRF policy).
- :mod:`pipeline.common.backoff`: exponential retry delays, with or without jitter.
- :mod:`pipeline.common.rate`: events per second over a sliding window.

These modules import nothing from the stage packages (``ingest``, ``detect``, ``alerts``,
``store`` ...), so any stage may use them without creating an import cycle.
"""
