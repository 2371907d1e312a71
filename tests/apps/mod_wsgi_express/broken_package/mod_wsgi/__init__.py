# A mod_wsgi package that cannot be imported (RWSGI0620).
raise RuntimeError('broken mod_wsgi package of the test')
