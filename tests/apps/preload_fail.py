# A WSGIImportScript that fails: the child must log the traceback and serve on.
raise RuntimeError('preload failure RT')
