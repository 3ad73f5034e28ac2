"""WSGI entry point: granian --interface wsgi dotpeer.wsgi:application"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dotpeer.settings")
application = get_wsgi_application()
