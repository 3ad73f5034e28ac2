#!/usr/bin/env python
"""django-admin for the bench's django-oauth-toolkit peer (see settings.py)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dotpeer.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
