VALUE = 'site'
