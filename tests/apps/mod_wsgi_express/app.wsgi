# Served through the handler script that mod_wsgi-express writes: reports what the tests of
# tests/mod_wsgi_express.rs check, as JSON.
import json
import os
import sys

import mod_wsgi

VERSION = 'v1'


def application(environ, start_response):
    query = environ.get('QUERY_STRING', '')
    if query.startswith('say='):
        print('express-app-says %s' % query[4:], file=sys.stderr)
    try:
        import express_helper
        helper = express_helper.WHERE
    except ImportError:
        helper = None
    body = {
        'version': VERSION,
        'pid': os.getpid(),
        'path_info': environ.get('PATH_INFO', ''),
        'script_name': environ.get('SCRIPT_NAME', ''),
        'remote_addr': environ.get('REMOTE_ADDR', ''),
        'remote_user': environ.get('REMOTE_USER', ''),
        'process_group': environ.get('mod_wsgi.process_group', ''),
        'multithread': environ['wsgi.multithread'],
        'multiprocess': environ['wsgi.multiprocess'],
        'mod_wsgi_path': list(getattr(mod_wsgi, '__path__', [])),
        'has_subscribe_shutdown': hasattr(mod_wsgi, 'subscribe_shutdown'),
        'threads_per_process': mod_wsgi.threads_per_process,
        'maximum_processes': mod_wsgi.maximum_processes,
        'helper': helper,
        'sys_path': sys.path,
    }
    data = json.dumps(body).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(data)))])
    return [data]
