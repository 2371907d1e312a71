# Stands in for pip's mod_wsgi package: the module's functions must be added to it.
MARKER = 'pip-package'
