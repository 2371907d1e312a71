# Daemon-mode load probe, routed by PATH_INFO. Every answer is JSON with the serving pid and
# `n`, this process's count of requests (its own counter, so a test can check what one
# process served): /hello at once, /work after 0.05 s, /upload?TOKEN reads the body in small
# pieces and leaves what it saw (length, or the error) in the data file `upload-TOKEN`,
# /abort calls os.abort(), /segv reads address 0 (a segfault).
import json
import os
import threading
import time

_lock = threading.Lock()
_served = 0


def _count():
    global _served
    with _lock:
        _served += 1
        return _served


def _upload(environ):
    token = environ.get('QUERY_STRING') or 'none'
    stream = environ['wsgi.input']
    want = int(environ.get('CONTENT_LENGTH') or 0)
    got = 0
    outcome = None
    try:
        while got < want:
            c = stream.read(min(16, want - got))
            if not c:
                outcome = 'short %d of %d' % (got, want)
                break
            got += len(c)
        else:
            outcome = 'complete %d' % got
    except Exception as e:
        outcome = 'error %s: %s' % (type(e).__name__, e)
    path = os.path.join(environ['RWSGI_TEST_DATA'], 'upload-' + token)
    with open(path + '.tmp', 'w') as f:
        f.write(outcome)
    os.rename(path + '.tmp', path)
    return {'length': got, 'outcome': outcome}


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/abort':
        os.abort()
    if path == '/segv':
        import ctypes
        ctypes.string_at(0)
    doc = {'pid': os.getpid(), 'n': _count()}
    if path == '/work':
        time.sleep(0.05)
    if path == '/upload':
        doc.update(_upload(environ))
    body = json.dumps(doc).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
