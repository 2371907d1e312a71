# WSGIAccessScript with no opinion: Apache's own Require lines decide.
def allow_access(environ, host):
    return None
