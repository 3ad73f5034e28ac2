"""Messages to users: mail (SMTP, or console + folder in development) behind one small interface."""
