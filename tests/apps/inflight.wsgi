# Holds each request ?ms= milliseconds (default 300) while counting the requests in flight in
# this interpreter, and answers JSON {"peak": most requests in flight seen while this one ran,
# "pid", "remote_port", "protocol"}: a peak above 1 proves requests ran at the same time.
import json
import os
import threading
import time
import urllib.parse

_lock = threading.Lock()
_in_flight = 0


def application(environ, start_response):
    global _in_flight
    q = dict(urllib.parse.parse_qsl(environ.get('QUERY_STRING', '')))
    hold = int(q.get('ms', '300')) / 1000.0
    with _lock:
        _in_flight += 1
        peak = _in_flight
    try:
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            time.sleep(0.01)
            with _lock:
                peak = max(peak, _in_flight)
    finally:
        with _lock:
            _in_flight -= 1
    body = json.dumps({
        'peak': peak,
        'pid': os.getpid(),
        'remote_port': environ['REMOTE_PORT'],
        'protocol': environ['SERVER_PROTOCOL'],
    }).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
