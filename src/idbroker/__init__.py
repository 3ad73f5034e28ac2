"""idbroker: a self-hostable OpenID Connect identity broker."""

__version__ = "0.1.0"
