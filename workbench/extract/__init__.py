"""Extraction: PMC packages in, image-caption pairs, article rows and error records out."""
