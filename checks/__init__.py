"""The suite's verify checks.

PYTEST_DONT_REWRITE: a warm fork server preloads the package (smartid.forkrun).
"""
