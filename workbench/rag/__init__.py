"""Retrieval-augmented answers with citations (`workbench ask`) and their multiple-choice evaluation (`rag-eval`)."""
