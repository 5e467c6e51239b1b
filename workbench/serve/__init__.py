"""`workbench serve`: the search API, figure bytes, articles and shard streaming over HTTP (FastAPI + uvicorn)."""
