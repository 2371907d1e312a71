# Starts background threads at import, as SDKs do (sentry-sdk, APScheduler): one daemon and one
# non-daemon thread that both run until the process ends. An atexit callback writes a marker
# file named after the application group, so a test can see that it ran in every interpreter
# even though the threads never stop.
import atexit
import json
import os
import threading
import time

import mod_wsgi

GROUP = mod_wsgi.application_group or 'GLOBAL'
SAFE = ''.join(c if c.isalnum() else '_' for c in GROUP)
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
MARKER = os.path.join(DATA, 'atexit-threads-%s-%d' % (SAFE, os.getpid()))


def _forever():
    while True:
        time.sleep(0.02)


threading.Thread(target=_forever, name='app-daemon-%s' % SAFE, daemon=True).start()
threading.Thread(target=_forever, name='app-worker-%s' % SAFE, daemon=False).start()


def _bye():
    with open(MARKER, 'w') as f:
        f.write('bye')


atexit.register(_bye)


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/json')])
    doc = {'pid': os.getpid(), 'group': GROUP, 'marker': MARKER,
           'threads': sorted(t.name for t in threading.enumerate())}
    return [json.dumps(doc).encode()]
