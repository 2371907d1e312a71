# Reports what the Python runtime directives (WSGIPythonOptimize, WSGIPythonHashSeed, …)
# changed, as seen from inside an interpreter; ?stdin, ?stdout and ?signal try the restricted
# operations and report what happened.
import json
import os
import signal
import sys
import warnings


def _attempt(f):
    try:
        f()
        return 'ok'
    except Exception as e:
        return '%s: %s' % (type(e).__name__, e)


def _marker(name):
    try:
        return __import__(name).VALUE
    except ImportError:
        return None


def report(environ):
    qs = environ.get('QUERY_STRING', '')
    doc = {'pid': os.getpid(), 'group': environ['mod_wsgi.application_group']}
    if qs == 'stdin':
        doc['stdin'] = _attempt(lambda: sys.stdin.read())
    elif qs == 'stdout':
        token = environ.get('HTTP_X_TOKEN', '')
        doc['stdout'] = _attempt(lambda: print('stdout says %s' % token))
    elif qs == 'signal':
        def handler(signum, frame):
            pass
        try:
            ret = signal.signal(signal.SIGUSR1, handler)
            doc['signal'] = 'returned'
            doc['returned_handler'] = ret is handler
        except Exception as e:
            doc['signal'] = '%s: %s' % (type(e).__name__, e)
        doc['installed'] = signal.getsignal(signal.SIGUSR1) is handler
        doc['signum'] = int(signal.SIGUSR1)
    else:
        doc.update(
            optimize=sys.flags.optimize,
            dont_write_bytecode=sys.flags.dont_write_bytecode,
            hash_randomization=sys.flags.hash_randomization,
            hash=str(hash('mod_rwsgi runtime')),
            warnoptions=sys.warnoptions,
            filters=['%s:%s' % (f[0], f[2].__name__) for f in warnings.filters],
            switchinterval=sys.getswitchinterval(),
            path=sys.path,
            prefix=sys.prefix,
            executable=sys.executable,
            base_prefix=sys.base_prefix,
            egg_cache=os.environ.get('PYTHON_EGG_CACHE'),
            site_marker=_marker('rt_site_marker'),
            pth_marker=_marker('rt_pth_marker'),
            venv_marker=_marker('rt_venv_marker'),
        )
    return doc


def application(environ, start_response):
    body = json.dumps(report(environ)).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
