"""Server-rendered pages: templates, static files, CSRF."""
