WHAT = 'express-submodule'
