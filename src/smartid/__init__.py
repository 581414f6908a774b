"""Setup and conformance suite for the Nexus Smart ID Shared credentials start-up guide.

The library works without pytest: the site model, the component clients, the TLS engine and the
embedded lab live here; `conftest.py`, `fixtures/`, `setup_steps/` and `checks/` wire it to pytest.
"""

__version__ = "0.1.0"
