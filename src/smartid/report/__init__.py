"""Reporting, one module per output: `seam` (the one module that imports allure: steps,
attachments, labels, warnings), `results` (the Allure results folder as data), `html` (the
Allure Report 3 HTML report) and `nightly` (the nightly run and its exit policy)."""
