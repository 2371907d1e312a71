# wsgi.file_wrapper over the file $RWSGI_TEST_DATA/<?file=>, kind chosen by ?kind=:
#   noread  - real fd, read() raises (proves the server does not read through Python)
#   plain   - a regular open() file
#   bytesio - io.BytesIO with the file's bytes (no fileno: block-read fallback)
# ?offset= seeks first, ?cl= sets Content-Length, ?blksize= passes a block size.
# ?token=T: the file-like's close() writes $RWSGI_TEST_DATA/fwclosed-T.
# X-Pid: the process that ran the app.
import io
import os
import urllib.parse


class NoRead:
    def __init__(self, f, marker):
        self.f = f
        self.marker = marker

    def fileno(self):
        return self.f.fileno()

    def tell(self):
        return self.f.tell()

    def seek(self, *a):
        return self.f.seek(*a)

    def read(self, *a):
        raise RuntimeError('read() must not be called on this file-like')

    def close(self):
        mark(self.marker)
        self.f.close()


class MarkedBytesIO(io.BytesIO):
    marker = None

    def close(self):
        mark(self.marker)
        super().close()


def mark(path):
    if path:
        with open(path, 'w') as f:
            f.write('closed')


def application(environ, start_response):
    q = dict(urllib.parse.parse_qsl(environ.get('QUERY_STRING', '')))
    data = environ['RWSGI_TEST_DATA']
    path = os.path.join(data, q['file'])
    kind = q.get('kind', 'plain')
    marker = os.path.join(data, 'fwclosed-' + q['token']) if q.get('token') else None
    offset = int(q.get('offset', '0'))
    if kind == 'noread':
        f = NoRead(open(path, 'rb'), marker)
    elif kind == 'plain':
        f = open(path, 'rb')
    elif kind == 'bytesio':
        with open(path, 'rb') as src:
            f = MarkedBytesIO(src.read())
        f.marker = marker
    else:
        raise ValueError(kind)
    if offset:
        f.seek(offset)
    headers = [
        ('Content-Type', 'application/octet-stream'),
        ('X-Kind', kind),
        ('X-Pid', str(os.getpid())),
    ]
    if 'cl' in q:
        headers.append(('Content-Length', q['cl']))
    start_response('200 OK', headers)
    if 'blksize' in q:
        return environ['wsgi.file_wrapper'](f, int(q['blksize']))
    return environ['wsgi.file_wrapper'](f)
