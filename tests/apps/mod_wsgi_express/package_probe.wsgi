# Reports which mod_wsgi module the interpreter has and whether its functions are there.
import importlib
import json

import mod_wsgi


def application(environ, start_response):
    try:
        sub = importlib.import_module('mod_wsgi.express').WHAT
    except (ImportError, AttributeError):
        sub = None
    body = json.dumps({
        'path': list(getattr(mod_wsgi, '__path__', [])),
        'submodule': sub,
        'version': list(mod_wsgi.version),
        'has_process_metrics': callable(mod_wsgi.process_metrics),
        'application_group': mod_wsgi.application_group,
        'environ_group': environ['mod_wsgi.application_group'],
    }).encode()
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]
