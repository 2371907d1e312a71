# Every start_response / iterable behaviour, chosen by ?mode=. With ?token=T the returned iterable
# is wrapped so that its close() writes $RWSGI_TEST_DATA/closed-T containing the number of items
# the server pulled, "exc" when the inner iterable raised.
import os
import sys
import time
import urllib.parse


class Tracked:
    def __init__(self, inner, path):
        self.inner = inner
        self.it = iter(inner)
        self.path = path
        self.count = 0
        self.raised = False

    def __iter__(self):
        return self

    def __next__(self):
        try:
            item = next(self.it)
        except StopIteration:
            raise
        except BaseException:
            self.raised = True
            raise
        self.count += 1
        return item

    def close(self):
        try:
            if hasattr(self.inner, 'close'):
                self.inner.close()
        finally:
            with open(self.path + '.tmp', 'w') as f:
                f.write('%d%s' % (self.count, ' exc' if self.raised else ''))
            os.rename(self.path + '.tmp', self.path)


HEADER_CASES = {
    'nonstr_name': [(b'X-Bytes', 'v')],
    'nonstr_value': [('X-Int', 5)],
    'nonlatin1_value': [('X-Snow', '\u2603')],
    'nonlatin1_name': [('X-Sn\u2603w', 'v')],
    'crlf_value': [('X-Inject', 'a\r\nX-Injected: yes')],
    'lf_value': [('X-Inject', 'a\nX-Injected: yes')],
    'cr_value': [('X-Inject', 'a\rX-Injected: yes')],
    'crlf_name': [('X-Inject\r\nX-Injected', 'yes')],
    'space_name': [('X Bad', 'v')],
    'empty_name': [('', 'v')],
    'not_tuple': ['X-Foo: bar'],
    'three_tuple': [('X-Foo', 'bar', 'baz')],
    'nul_value': [('X-Nul', 'a\x00b')],
    'ctl_value': [('X-Ctl', 'a\x01b')],
    'esc_value': [('X-Esc', 'a\x1b[31mb')],
    'del_value': [('X-Del', 'a\x7fb')],
    # valid ones
    'latin1_value': [('X-Latin', 'caf\xe9')],
    'empty_value': [('X-Empty', '')],
    'tab_value': [('X-Tab', 'a\tb')],
}


# A body that, under a Transfer-Encoding: chunked the app has no right to set, would end the
# response at once and forge a second one on a kept-alive connection.
SMUGGLE = (b'0\r\n\r\nHTTP/1.1 200 OK\r\nX-Smuggled: yes\r\nContent-Length: 5\r\n\r\n'
           b'hello')


def application(environ, start_response):
    q = dict(urllib.parse.parse_qsl(environ.get('QUERY_STRING', ''), keep_blank_values=True))
    mode = q.get('mode', 'list')
    result = run(mode, q, environ, start_response)
    token = q.get('token')
    if token:
        result = Tracked(result, os.path.join(environ['RWSGI_TEST_DATA'], 'closed-' + token))
    return result


def plain(start_response, status='200 OK', extra=()):
    return start_response(status, [('Content-Type', 'text/plain')] + list(extra))


def run(mode, q, environ, start_response):
    if mode == 'list':
        plain(start_response)
        return [b'Hello ', b'World']
    if mode == 'generator':
        plain(start_response)
        return (b for b in (b'a', b'b', b'c'))
    if mode == 'write':
        write = plain(start_response)
        write(b'one')
        write(b'two')
        return [b'three']
    if mode == 'bad_write_args':
        # The TypeError of each wrong call, a line each.
        write = plain(start_response)
        err = environ['wsgi.errors']
        calls = [lambda: write(), lambda: write('text'), lambda: err.write(),
                 lambda: err.write(1), lambda: err.writelines(), lambda: err.writelines([b'x'])]
        out = []
        for call in calls:
            try:
                call()
                out.append('no error')
            except TypeError as e:
                out.append(str(e))
        return ['\n'.join(out).encode()]
    if mode == 'write_only':
        write = plain(start_response)
        write(b'only')
        return []
    if mode == 'empty_chunks':
        plain(start_response)
        return [b'', b'abc', b'', b'def', b'']
    if mode == 'all_empty':
        plain(start_response)
        return [b'', b'']
    if mode == 'status':
        start_response(q['s'], [('Content-Type', 'text/plain')])
        return [b'status body']
    if mode == 'header':
        start_response('200 OK', [('Content-Type', 'text/plain')] + HEADER_CASES[q['case']])
        return [b'header body']
    if mode == 'hop':
        # ?name=, ?value=: one header the app must not set, then the smuggling body.
        start_response('200 OK', [('Content-Type', 'text/plain'), (q['name'], q['value'])])
        return [SMUGGLE]
    if mode == 'latin1_head':
        start_response('200 Caf\xe9', [('Content-Type', 'text/plain; x=caf\xe9'),
                                        ('X-Latin', 'caf\xe9')])
        return [b'latin-1 head']
    if mode == 'cl_value':
        # ?cl=: the Content-Length value; ?cl2=: a second Content-Length header.
        extra = [('Content-Length', q['cl'])]
        if 'cl2' in q:
            extra.append(('Content-Length', q['cl2']))
        plain(start_response, extra=extra)
        return [b'0123456789']
    if mode == 'headers_tuple':
        start_response('200 OK', (('Content-Type', 'text/plain'),))
        return [b'tuple headers']
    if mode == 'set_cookie':
        start_response('200 OK', [('Content-Type', 'text/plain'),
                                  ('Set-Cookie', 'a=1; Path=/'),
                                  ('X-Multi', 'first'),
                                  ('Set-Cookie', 'b=2; Path=/'),
                                  ('X-Multi', 'second'),
                                  ('Set-Cookie', 'c=3; Path=/')])
        return [b'cookies']
    if mode == 'second_sr':
        plain(start_response)
        start_response('201 Created', [('Content-Type', 'text/plain')])
        return [b'second start_response accepted']
    if mode == 'exc_info_before':
        plain(start_response)
        try:
            raise ValueError('handled before headers')
        except ValueError:
            start_response('500 Oops', [('Content-Type', 'text/plain'), ('X-Error', 'yes')],
                           sys.exc_info())
        return [b'error page']
    if mode == 'exc_info_after':
        write = plain(start_response)
        write(b'partial')

        def gen():
            yield b'more'
            try:
                raise ValueError('exc_info after headers')
            except ValueError:
                start_response('500 Oops', [('Content-Type', 'text/plain')], sys.exc_info())
            yield b'never'
        return gen()
    if mode == 'cl_short':
        plain(start_response, extra=[('Content-Length', '5')])
        return [b'01234', b'56789']
    if mode == 'cl_long':
        plain(start_response, extra=[('Content-Length', '100')])
        return [b'0123456789']
    if mode == 'status_body':
        start_response(q['s'], [('Content-Type', 'text/plain')])
        return [b'this body must not be sent']
    if mode == 'str_body':
        plain(start_response)
        return ['text, not bytes']
    if mode == 'str_body_after':
        plain(start_response)
        return iter([b'bytes first', 'then text'])
    if mode == 'exc_before':
        raise RuntimeError('boom-before-start-response')
    if mode == 'exc_after_sr':
        plain(start_response)
        raise RuntimeError('boom-after-start-response')
    if mode == 'exc_after_headers':
        plain(start_response)

        def gen():
            yield b'partial'
            raise RuntimeError('boom-after-headers')
        return gen()
    if mode == 'exc_after_headers_cl':
        plain(start_response, extra=[('Content-Length', '100')])

        def gen():
            yield b'partial'
            raise RuntimeError('boom-after-headers-cl')
        return gen()
    if mode == 'big':
        mib = int(q.get('mib', '1'))
        extra = [('Content-Length', str(mib << 20))] if q.get('cl') else []
        plain(start_response, extra=extra)
        chunk = b'x' * (1 << 20)
        return (chunk for _ in range(mib))
    if mode == 'endless':
        # Bounded: at most ?max= chunks of 64 KiB, optional ?sleep= seconds between them.
        plain(start_response)
        count = int(q.get('max', '20000'))
        pause = float(q.get('sleep', '0'))
        chunk = b'y' * 65536

        def gen():
            for _ in range(count):
                yield chunk
                if pause:
                    time.sleep(pause)
        return gen()
    if mode == 'close_raises':
        plain(start_response)

        class R:
            def __iter__(self):
                return iter([b'close raises'])

            def close(self):
                raise RuntimeError('boom-in-close')
        return R()
    raise ValueError('unknown mode %r' % mode)
