"""The REST edge (Falcon ASGI under uvicorn); `feed.py` will hold the websocket feed."""
