# mod_wsgi 6.x additions beside the 4.9.4 names. Routes (PATH_INFO):
#   /timing          the environ's timing keys (4.9.4 and 6.x names), their types, the
#                    request_started event's timestamps and time.time(), as JSON
#   /status/NNN      a response with status NNN
#   /raise           raises before start_response (500)
#   /timeout         raises mod_wsgi.RequestTimeout before start_response (504)
#   /timeout/late    raises mod_wsgi.RequestTimeout after the first body bytes
#   /timeout/caught  raises and catches it, then answers 200
#   /start           mod_wsgi.start_recording_metrics()
#   /rmetrics        mod_wsgi.request_metrics()
#   /pmetrics        mod_wsgi.process_metrics()
#   /finished        the request_finished events recorded so far, by PATH_INFO
import json
import time

import mod_wsgi


def remember_event(name, **kwargs):
    if name == 'request_started':
        kwargs['request_data']['event'] = {
            'request_start': kwargs['request_start'],
            'queue_start': kwargs['queue_start'],
            'daemon_start': kwargs['daemon_start'],
            'application_start': kwargs['application_start'],
        }
    if name == 'request_finished':
        path = (kwargs.get('request_environ') or {}).get('PATH_INFO', '')
        finished[path] = {k: v for k, v in kwargs.items()
                          if k not in ('request_environ', 'request_data')}


finished = {}
mod_wsgi.subscribe_events(remember_event)

TIMING_KEYS = ('request_start', 'script_start', 'application_start', 'queue_start',
               'daemon_start')


def body(start_response, obj, status='200 OK'):
    data = json.dumps(obj).encode()
    start_response(status, [('Content-Type', 'application/json'),
                            ('Content-Length', str(len(data)))])
    return [data]


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/timing':
        now = time.time()
        keys = {k: environ.get('mod_wsgi.' + k) for k in TIMING_KEYS}
        return body(start_response, {
            'values': keys,
            'types': {k: type(v).__name__ for k, v in keys.items()},
            'event': mod_wsgi.request_data().get('event'),
            'now': now,
        })
    if path.startswith('/status/'):
        code = int(path[len('/status/'):])
        start_response('%d Whatever' % code, [('Content-Type', 'text/plain')])
        return [b'status %d\n' % code]
    if path == '/raise':
        raise ValueError('deliberate failure for the 5xx count')
    if path == '/timeout':
        time.sleep(0.05)
        raise mod_wsgi.RequestTimeout('deadline passed')
    if path == '/timeout/late':
        def gen():
            yield b'partial '
            raise mod_wsgi.RequestTimeout('deadline passed mid-body')
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return gen()
    if path == '/timeout/caught':
        try:
            raise mod_wsgi.RequestTimeout('caught')
        except mod_wsgi.RequestTimeout:
            pass
        return body(start_response, {
            'base_exception': issubclass(mod_wsgi.RequestTimeout, BaseException),
            'not_exception': not issubclass(mod_wsgi.RequestTimeout, Exception),
        })
    if path == '/start':
        mod_wsgi.start_recording_metrics()
        return body(start_response, {'started': True})
    if path == '/rmetrics':
        return body(start_response, mod_wsgi.request_metrics())
    if path == '/pmetrics':
        m = mod_wsgi.process_metrics()
        return body(start_response, {k: v for k, v in m.items() if k != 'threads'})
    if path == '/finished':
        return body(start_response, finished)
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'no such route\n']
