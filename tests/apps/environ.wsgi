# Dumps the WSGI environ as JSON: {"environ": {key: str value or repr()}, "types": {key: type
# name}, "pid": ..., "input_attrs": [...], "errors_attrs": [...]}.
# The request method is echoed in X-Request-Method so that HEAD requests can be observed.
import json
import os
import sys


def dump(environ, start_response, callable_name):
    env = {}
    types = {}
    for k, v in environ.items():
        types[k] = type(v).__name__
        env[k] = v if isinstance(v, str) else repr(v)
    doc = {
        'environ': env,
        'types': types,
        'pid': os.getpid(),
        'callable': callable_name,
        'os_environ_has_setenv': 'RWSGI_TEST_SETENV' in os.environ,
        'input_attrs': [a for a in ('read', 'readline', 'readlines', '__iter__')
                        if hasattr(environ['wsgi.input'], a)],
        'errors_attrs': [a for a in ('write', 'writelines', 'flush')
                         if hasattr(environ['wsgi.errors'], a)],
        'argv': list(getattr(sys, 'argv', [])),
    }
    body = json.dumps(doc, sort_keys=True).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body))),
                              ('X-Request-Method', environ['REQUEST_METHOD']),
                              ('X-Callable', callable_name)])
    return [body]


def application(environ, start_response):
    return dump(environ, start_response, 'application')


def alternate(environ, start_response):
    return dump(environ, start_response, 'alternate')
