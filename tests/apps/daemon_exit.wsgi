# Python's finalisation in a daemon process that drains. The query string picks what the
# process registers, once: 'marker' an atexit callback and a mod_wsgi.subscribe_shutdown
# callback, writing data/atexit-<pid> and data/stopping-<pid>; 'hang' an atexit callback that
# never returns. Answers the pid.
import atexit
import json
import os
import time

import mod_wsgi

_data = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
_registered = set()


def _write(name):
    with open(os.path.join(_data, '%s-%d' % (name, os.getpid())), 'w') as f:
        f.write('bye')


def _hang():
    while True:
        time.sleep(1)


def application(environ, start_response):
    mode = environ.get('QUERY_STRING', '')
    if mode and mode not in _registered:
        _registered.add(mode)
        if mode == 'hang':
            atexit.register(_hang)
        else:
            atexit.register(_write, 'atexit')
            mod_wsgi.subscribe_shutdown(lambda event, **kw: _write('stopping'))
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps({'pid': os.getpid()}).encode('ascii')]
