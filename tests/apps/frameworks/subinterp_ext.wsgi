# Imports rpds (rpds-py, built with PyO3). PyO3 modules initialise in one interpreter per
# process only: the second sub-interpreter that imports it gets PyO3's ImportError.
import json
import sys

import rpds


def application(environ, start_response):
    m = rpds.HashTrieMap({'a': 1}).insert('b', 2)
    body = json.dumps({
        'keys': sorted(m.keys()),
        'group': environ['mod_wsgi.application_group'],
        'prefix': sys.prefix,
    }).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
