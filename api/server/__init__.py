"""The HTTP server of the job API: FastAPI app, routes, auth, errors, limits, metrics."""
