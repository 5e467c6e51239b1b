"""BIOMEDICA Workbench."""
