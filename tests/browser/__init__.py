"""End-to-end tests in a real browser (JupyterLab in headless Chromium)."""
