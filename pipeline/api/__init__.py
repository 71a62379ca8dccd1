"""HTTP API: ``create_app(settings, store)`` and the Serve ingress ``ApiIngress`` (in ``ingress``)."""
