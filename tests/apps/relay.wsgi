# How the Apache child relays a daemon's response. PATH_INFO picks:
# '/pause': yields b'a', sleeps 0.4 s, yields b'b' (each chunk is a flush the app asks for);
# '/flood': yields 1 MiB chunks until the client stops taking them, then writes
# data/flood-<QUERY_STRING> once the generator is closed (the Apache child gave up).
import os
import time

_data = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')


def _pause():
    yield b'a'
    time.sleep(0.4)
    yield b'b'


def _flood(tag):
    chunk = b'x' * (1 << 20)
    try:
        for _ in range(4096):
            yield chunk
    finally:
        with open(os.path.join(_data, 'flood-' + tag), 'w') as f:
            f.write('closed')


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    if environ['PATH_INFO'] == '/flood':
        return _flood(environ.get('QUERY_STRING', 'x'))
    return _pause()
