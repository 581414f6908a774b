"""Setup and conformance suite for the Nexus Smart ID Shared credentials start-up guide.

The library works without pytest: the site model, the component clients, the TLS engine and the
embedded lab live here; `conftest.py`, `fixtures/`, `setup_steps/` and `checks/` wire it to pytest.
Its asserts are not tests, so pytest's assert rewriting leaves the package alone even when a test
harness imported it before pytest started (PYTEST_DONT_REWRITE).
"""

__version__ = "0.1.0"
