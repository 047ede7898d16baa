"""The HTTP face of flashsale: aiohttp on uvloop."""
