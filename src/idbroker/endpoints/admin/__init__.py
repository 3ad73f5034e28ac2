"""The admin REST API under /admin/api/v1 (issue 13, Admin): routes.py authorises, audits and
mounts the operations of handlers.py; spec.py builds the OpenAPI 3.1 document from the same table;
reference.py renders it as a page."""
