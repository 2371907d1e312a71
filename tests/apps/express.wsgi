# App served by rwsgi-express in tests/express.rs: reports what the generated configuration
# decides (working directory, sys.path additions, Python prefix, MPM shape, daemon or embedded
# mode) as JSON.
import json
import os
import pwd
import sys

VERSION = 'v1'


def _value(module):
    try:
        return __import__(module).VALUE
    except ImportError:
        return None


def application(environ, start_response):
    body = json.dumps({
        'version': VERSION,
        'pid': os.getpid(),
        'user': pwd.getpwuid(os.getuid()).pw_name,
        'process_group': environ.get('mod_wsgi.process_group'),
        'cwd': os.getcwd(),
        'python_path_module': _value('express_python_path_mod'),
        'workdir_module': _value('express_workdir_mod'),
        'prefix': sys.prefix,
        'multithread': environ['wsgi.multithread'],
        'multiprocess': environ['wsgi.multiprocess'],
        'script_name': environ['SCRIPT_NAME'],
    }).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
