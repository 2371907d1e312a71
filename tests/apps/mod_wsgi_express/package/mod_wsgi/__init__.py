# Stands in for pip's mod_wsgi package. Never run: the module only takes over its __path__.
raise RuntimeError('the mod_wsgi package itself must not be imported')
