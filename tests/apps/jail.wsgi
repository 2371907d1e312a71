# Inside a chroot= jail: what the app sees of the file system and of its paths.
import json
import os


def application(environ, start_response):
    body = {
        'pid': os.getpid(),
        'root': sorted(os.listdir('/')),
        'cwd': os.getcwd(),
        'file': __file__,
        'SCRIPT_FILENAME': environ.get('SCRIPT_FILENAME'),
        'DOCUMENT_ROOT': environ.get('DOCUMENT_ROOT'),
        'uid': os.getuid(),
    }
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(body).encode('utf-8')]
