# WSGIImportScript of a threads=0 daemon group that never returns, as service scripts under
# mod_wsgi often do: it leaves the marker `loop-PID` in the data dir, then rewrites
# `loop-PID.beat` (a count) every 0.2 s in the foreground, forever.
import os
import time

_data = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
_pid = os.getpid()


def _write(name, text):
    path = os.path.join(_data, name)
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.rename(path + '.tmp', path)


_write('loop-%d' % _pid, 'started')
n = 0
while True:
    n += 1
    _write('loop-%d.beat' % _pid, str(n))
    time.sleep(0.2)
