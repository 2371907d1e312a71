# tests/daemon_persist.rs: persistent daemon connections and the pulled request body.
#   /p/sockets  -> {"pid", "sockets": inodes of this process's open sockets}
#   /p/echo     -> reads the whole body: {"pid", "len", "sha256"}
#   /p/ignore   -> never reads the body: {"pid"}
#   /p/bigfirst -> sends 1 MiB, then reads the whole body, then its sha256 (text)
#   /p/sleep    -> sleeps 0.3 s (or the seconds in the query string): {"pid"}
import hashlib
import json
import os
import time


def sockets():
    out = []
    for fd in os.listdir('/proc/self/fd'):
        try:
            link = os.readlink('/proc/self/fd/' + fd)
        except OSError:
            continue
        if link.startswith('socket:'):
            out.append(link[8:-1])
    return sorted(out)


def read_all(environ):
    h, n = hashlib.sha256(), 0
    inp = environ['wsgi.input']
    while True:
        chunk = inp.read(65536)
        if not chunk:
            return h.hexdigest(), n
        h.update(chunk)
        n += len(chunk)


def answer(start_response, doc):
    body = json.dumps(doc).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/sockets':
        return answer(start_response, {'pid': os.getpid(), 'sockets': sockets()})
    if path == '/echo':
        sha, n = read_all(environ)
        return answer(start_response, {'pid': os.getpid(), 'len': n, 'sha256': sha})
    if path == '/ignore':
        return answer(start_response, {'pid': os.getpid()})
    if path == '/sleep':
        time.sleep(float(environ.get('QUERY_STRING') or 0.3))
        return answer(start_response, {'pid': os.getpid()})
    if path == '/bigfirst':
        start_response('200 OK', [('Content-Type', 'text/plain')])

        def gen():
            yield b'x' * (1 << 20)
            yield ('\n' + read_all(environ)[0]).encode()
        return gen()
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'no such path\n']
