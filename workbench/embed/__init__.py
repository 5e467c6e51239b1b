"""Embeddings of the catalog's images (and captions): models, the embedding run, and the on-disk format."""
