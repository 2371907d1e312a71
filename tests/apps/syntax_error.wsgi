def application(environ, start_response)   # missing colon: SyntaxError at load
    start_response('200 OK', [])
    return [b'never']
