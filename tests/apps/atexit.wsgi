# Registers an atexit callback per interpreter that writes a marker file named after the
# application group, so a test can see that every interpreter ran its atexit at child exit.
import atexit
import os

registered = []


def _bye(path):
    with open(path, 'w') as f:
        f.write('bye')


def application(environ, start_response):
    if not registered:
        group = environ['mod_wsgi.application_group'] or 'GLOBAL'
        safe = ''.join(c if c.isalnum() else '_' for c in group)
        path = os.path.join(environ['RWSGI_DATA'], 'atexit-%s-%d' % (safe, os.getpid()))
        atexit.register(_bye, path)
        registered.append(path)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [registered[0].encode()]
