# Hands the request's objects to a thread that outlives the request, then records what each
# call gave the thread in $RWSGI_TEST_DATA/threads-<token> (JSON: {"during", "after_read",
# "after_write", "after_errors"}, each {"ok": ...} or {"error": "Type: message"}).
# ?mode=read: the thread calls wsgi.input.read() at once (the client sends the body late);
# ?mode=write: the thread writes ?mib= MiB through write() at once (?chunk= bytes a call);
# ?mode=read_at_close: the thread starts wsgi.input.read() from the iterable's close(), which
# gives it 0.3 s to begin, so the read is in progress when the request ends;
# ?mode=late: the thread only waits. The app returns at once either way. Once close() has
# run (the request is ending) the thread uses wsgi.input, write and wsgi.errors again.
import json
import os
import threading
import time
import urllib.parse


def outcome(call):
    try:
        r = call()
        return {'ok': len(r) if isinstance(r, bytes) else repr(r)}
    except Exception as e:
        return {'error': '%s: %s' % (type(e).__name__, e)}


class Body:
    def __init__(self, chunks, ended, linger):
        self.chunks = chunks
        self.ended = ended
        self.linger = linger

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        self.ended.set()
        time.sleep(self.linger)


def application(environ, start_response):
    q = dict(urllib.parse.parse_qsl(environ.get('QUERY_STRING', '')))
    mode = q.get('mode', 'late')
    inp = environ['wsgi.input']
    errors = environ['wsgi.errors']
    data = environ['RWSGI_TEST_DATA']
    ended = threading.Event()
    write = start_response('200 OK', [('Content-Type', 'text/plain')])

    def flood():
        chunk = b'x' * int(q.get('chunk', 1 << 20))
        total = int(q.get('mib', '64')) << 20
        for _ in range(total // len(chunk)):
            write(chunk)

    def worker():
        doc = {}
        if mode == 'read':
            doc['during'] = outcome(inp.read)
        elif mode == 'write':
            doc['during'] = outcome(flood)
        ended.wait(60)
        if mode == 'read_at_close':
            doc['during'] = outcome(inp.read)
        time.sleep(0.3)
        doc['after_read'] = outcome(inp.read)
        doc['after_write'] = outcome(lambda: write(b'late'))
        doc['after_errors'] = outcome(lambda: errors.write('late line\n'))
        path = os.path.join(data, 'threads-' + q['token'])
        with open(path + '.tmp', 'w') as f:
            json.dump(doc, f)
        os.rename(path + '.tmp', path)

    threading.Thread(target=worker).start()
    return Body([b'returned\n'], ended, 0.3 if mode == 'read_at_close' else 0)
