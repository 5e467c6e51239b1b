"""Expert annotation of clusters and images (issue 10)."""
