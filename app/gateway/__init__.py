"""The HTTP gateway: aiohttp app factory, routes, handlers, and its in-memory read model."""
