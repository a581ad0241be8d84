"""HTTP: the aiohttp routes of the service, one module per audience."""
