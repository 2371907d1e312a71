# Daemon log routing probe: a line at import, one from a thread outside any request and one
# through wsgi.errors during the request, each starting with "daemon_logs:" and carrying the
# process group, the pid or ?token=. Answers {pid, group}.
import json
import os
import sys
import threading

print('daemon_logs: imported pid=%d' % os.getpid())
sys.stdout.flush()


def _background(group, token):
    print('daemon_logs: background print in %s %s' % (group, token))
    sys.stdout.flush()


def application(environ, start_response):
    group = environ['mod_wsgi.process_group']
    token = environ.get('QUERY_STRING', '')
    environ['wsgi.errors'].write('daemon_logs: request line in %s %s\n' % (group, token))
    t = threading.Thread(target=_background, args=(group, token))
    t.start()
    t.join()
    body = json.dumps({'pid': os.getpid(), 'group': group}).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
