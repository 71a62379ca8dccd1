"""Redis adapter: camera registry, health, faces stream, aggregates.

Import the store from :mod:`pipeline.store.redis_store`; this package
``__init__`` stays import-free so :mod:`pipeline.store.keys` loads without redis.
"""
