# WSGIAccessScript admitting only a documentation address (never the test client).
def allow_access(environ, host):
    return host == '192.0.2.1'
