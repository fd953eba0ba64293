"""deeprel: joint named-entity recognition and relation extraction (Crone 2020)."""

__version__ = "0.1.0"
