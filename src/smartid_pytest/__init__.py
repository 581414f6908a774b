"""The suite's pytest plugin, loaded by pytest itself through the `pytest11` entry point."""
