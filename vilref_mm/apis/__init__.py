"""High-level entry points: run the plugin's workflows from Python (import the submodules)."""
