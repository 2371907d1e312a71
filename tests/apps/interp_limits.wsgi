# Reports the application group, how many interpreters this process has (main included) and
# the process RSS, so tests can see how many sub-interpreters requests made it create.
import json
import os

import _xxsubinterpreters as si
import mod_wsgi


def rss_kb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def application(environ, start_response):
    doc = {
        'group': environ['mod_wsgi.application_group'],
        'module_group': mod_wsgi.application_group,
        'interpreters': len(si.list_all()),
        'pid': os.getpid(),
        'rss_kb': rss_kb(),
    }
    body = json.dumps(doc).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
