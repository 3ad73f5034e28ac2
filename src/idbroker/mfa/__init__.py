"""Multi-factor authentication: factors behind one small interface (base.py), the policy that
decides when a second factor is needed (policy.py)."""
