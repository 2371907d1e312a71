# Daemon-mode probe, routed by PATH_INFO: /pid (JSON facts about the serving process),
# /echo (the request body back), /upload (read in chunks, {pid, length}), /download?MiB (a
# generator of that many MiB), /bigheader?N (an N-byte header), /sleep, /slow and /hang
# (0.2 s, 2 s or 30 s, then /pid), /spin (30 s in short sleeps, interruptible), /gilhog
# (8 s holding the GIL), /exit (the process dies).
import json
import os
import time


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/exit':
        os._exit(3)
    if path == '/echo':
        n = int(environ.get('CONTENT_LENGTH') or 0)
        stream = environ['wsgi.input']
        chunks = []
        while n > 0:
            c = stream.read(min(n, 65536))
            if not c:
                break
            chunks.append(c)
            n -= len(c)
        body = b''.join(chunks)
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return [body]
    if path == '/upload':
        stream = environ['wsgi.input']
        n = 0
        while True:
            c = stream.read(65536)
            if not c:
                break
            n += len(c)
        body = json.dumps({'pid': os.getpid(), 'length': n}).encode('ascii')
        start_response('200 OK', [('Content-Type', 'application/json')])
        return [body]
    if path == '/download':
        mib = int(environ.get('QUERY_STRING') or 1)
        chunk = b'x' * 65536
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('Content-Length', str(mib << 20))])
        return (chunk for _ in range(mib * 16))
    if path == '/bigheader':
        n = int(environ.get('QUERY_STRING') or 1)
        start_response('200 OK', [('Content-Type', 'text/plain'), ('X-Big', 'b' * n)])
        return [b'ok']
    if path == '/sleep':
        time.sleep(0.2)
    if path == '/slow':
        time.sleep(2)
    if path == '/hang':
        time.sleep(30)
    if path == '/gilhog':
        import ctypes
        # PyDLL keeps the GIL across the call: libc's sleep() then holds it for 8 s.
        ctypes.PyDLL(None).sleep(8)
    if path == '/spin':
        deadline = time.time() + 30
        while time.time() < deadline:
            time.sleep(0.05)
    doc = {
        'pid': os.getpid(),
        'uid': os.getuid(),
        'process_group': environ['mod_wsgi.process_group'],
        'multithread': environ['wsgi.multithread'],
        'multiprocess': environ['wsgi.multiprocess'],
    }
    body = json.dumps(doc, sort_keys=True).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]
