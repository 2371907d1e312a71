# Imported by setupfail.pth (WSGIPythonPath) in every new interpreter. In application groups
# named broken-* it records the attempt in the data dir and fails the interpreter's set-up;
# in threaded-broken-* it first starts a thread that outlives the failed set-up. A
# BaseException, because site.addsitedir() only reports (and swallows) an Exception.
import os
import threading
import time

import mod_wsgi

GROUP = mod_wsgi.application_group
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'data')


class SetUpRefused(BaseException):
    pass


if GROUP.startswith(('broken-', 'threaded-broken-')):
    with open(os.path.join(DATA, 'setup-attempts'), 'a') as f:
        f.write('%d %s\n' % (os.getpid(), GROUP))
    if GROUP.startswith('threaded-'):
        def linger():
            while True:
                time.sleep(0.05)
        threading.Thread(target=linger, daemon=True).start()
    raise SetUpRefused('interpreter set-up refused for test group ' + GROUP)
