"""The browser journey of an authorization request: login → consent → back to the client."""
