"""The HTTP edge under Flask: the app class, the views, errors, signed links, CORS, the
trusted proxy and ``/healthz``. Views translate requests into plain facts for
:mod:`service.sansio` and hand its plans to :mod:`service.delivery`."""
