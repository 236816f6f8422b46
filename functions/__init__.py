"""HTTP handlers: one FastAPI app (uvicorn locally, Mangum on Lambda) and the S3 upload trigger."""
