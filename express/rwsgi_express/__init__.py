"""rwsgi-express: serve a WSGI script through Apache httpd and mod_rwsgi with a generated
configuration in a private server root, without editing the system's Apache setup.

Commands: ``start-server`` (set up, then run httpd in the foreground), ``setup-server`` (write
``httpd.conf`` and an ``apachectl`` wrapper only) and ``module-location``.
"""
