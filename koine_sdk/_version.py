"""The version of this distribution, in one place (``pyproject.toml`` reads it from here).

3.x: a superset of the API of the reference koine-sdk 2.3.0, so this line sorts above it.
"""

__version__ = "3.0.0a1"
