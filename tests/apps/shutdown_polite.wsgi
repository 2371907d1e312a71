# Threads an app leaves that Python's own exit stops: a daemon thread that an atexit callback
# stops (as APScheduler and sentry-sdk do) and the non-daemon workers of a
# concurrent.futures executor (stopped by threading's exit hooks). The interpreter can then
# be ended normally. The callback writes a marker file named after the application group.
import atexit
import concurrent.futures
import json
import os
import threading

import mod_wsgi

GROUP = mod_wsgi.application_group or 'GLOBAL'
SAFE = ''.join(c if c.isalnum() else '_' for c in GROUP)
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
MARKER = os.path.join(DATA, 'atexit-polite-%s-%d' % (SAFE, os.getpid()))

stop = threading.Event()


def _poll():
    while not stop.wait(0.02):
        pass


worker = threading.Thread(target=_poll, name='polite-%s' % SAFE, daemon=True)
worker.start()

executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix='pool-' + SAFE)
executor.submit(sum, [1, 2]).result()


def _bye():
    stop.set()
    with open(MARKER, 'w') as f:
        f.write('bye')


atexit.register(_bye)


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/json')])
    doc = {'pid': os.getpid(), 'group': GROUP, 'marker': MARKER,
           'threads': sorted(t.name for t in threading.enumerate())}
    return [json.dumps(doc).encode()]
