"""tcache for pytest: `pytest --tcache` runs only the tests whose inputs
changed since they last passed (see README.md, "pytest")."""

__version__ = "0.1.0"
