# Imported by app.wsgi from the directory that --python-path or --working-directory names.
import os

WHERE = os.path.dirname(os.path.abspath(__file__))
