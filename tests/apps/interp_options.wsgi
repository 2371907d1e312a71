# Reports the settings <WSGIInterpreterOptions> gives the interpreter serving the request:
# whether sys.stdin / sys.stdout are restricted, whether signal.signal is intercepted, the
# switch interval and sys.path.
import json
import os
import signal
import sys
import types


def application(environ, start_response):
    doc = {
        'pid': os.getpid(),
        'process_group': environ['mod_wsgi.process_group'],
        'application_group': environ['mod_wsgi.application_group'],
        'stdin_restricted': type(sys.stdin).__name__ == 'Restricted',
        'stdout_restricted': type(sys.stdout).__name__ == 'Restricted',
        # The real one is a Python function of the signal module; the interceptor is built in.
        'signal_intercepted': isinstance(signal.signal, types.BuiltinFunctionType),
        'switchinterval': sys.getswitchinterval(),
        'path': sys.path,
    }
    body = json.dumps(doc).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
