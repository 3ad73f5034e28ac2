"""Users moved from another system without a password reset: lazy migration sources and bulk
import/export. The interface and the table of kinds are in base.py."""
