"""Users, passwords and browser sessions."""
