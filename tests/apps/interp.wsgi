# Reports which interpreter runs the app, whether PyGILState_Check() holds (decisions.md §2:
# %{GLOBAL} code must see the main interpreter's thread state as the GILState one) and a
# per-interpreter counter (module state shared by every request of the same application group).
import ctypes
import json
import os
import threading

counter = 0
lock = threading.Lock()


def application(environ, start_response):
    global counter
    with lock:
        counter += 1
        n = counter
    try:
        import _xxsubinterpreters as si
        cur, main = int(si.get_current()), int(si.get_main())
    except Exception:
        cur = main = None
    doc = {
        'gilstate_check': ctypes.pythonapi.PyGILState_Check(),
        'interp': cur,
        'main': main,
        'counter': n,
        'thread': threading.get_ident(),
        'pid': os.getpid(),
        'group': environ['mod_wsgi.application_group'],
    }
    body = json.dumps(doc).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
