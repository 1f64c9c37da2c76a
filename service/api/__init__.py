"""Where a request enters: the FastAPI app (app.py) and its thin routes."""
