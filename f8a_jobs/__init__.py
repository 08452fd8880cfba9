"""f8a-jobs: persistent periodic and one-shot jobs behind a Connexion API."""

__version__ = "0.1.0"
