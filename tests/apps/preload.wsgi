# Loaded by WSGIImportScript when each Apache child starts. Its import leaves a marker file
# in the data dir (no request needed to see it) and counts its executions per interpreter,
# so a request can show that it is served by the preloaded module, imported once.
import json
import os
import sys
import time

IMPORTED_AT = time.time()
sys._rt_preload_count = getattr(sys, '_rt_preload_count', 0) + 1
try:
    import _xxsubinterpreters as _si
    _main = int(_si.get_current()) == int(_si.get_main())
except Exception:
    _main = None

_data = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
with open(os.path.join(_data, 'preload-%d-%s' % (os.getpid(), 'main' if _main else 'sub')),
          'w') as f:
    f.write(repr(IMPORTED_AT))


def application(environ, start_response):
    doc = {
        'pid': os.getpid(),
        'imported_at': IMPORTED_AT,
        'now': time.time(),
        'count': sys._rt_preload_count,
        'main': _main,
        'group': environ['mod_wsgi.application_group'],
    }
    body = json.dumps(doc).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
