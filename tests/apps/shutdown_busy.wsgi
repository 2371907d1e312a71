# Burns CPU in Python without releasing the GIL for I/O, so a stop or restart arrives while
# the request thread is inside Python. A marker file says the loop has started; the loop is
# bounded so that a stuck child still ends eventually.
import os
import time


def application(environ, start_response):
    marker = os.path.join(environ['RWSGI_TEST_DATA'], 'busy-%d' % os.getpid())
    with open(marker, 'w') as f:
        f.write('running')
    end = time.monotonic() + 30
    n = 0
    while time.monotonic() < end:
        n += 1
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [str(n).encode()]
