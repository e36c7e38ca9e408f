"""What an installation sets: settings from the environment, and the translation catalogs."""
