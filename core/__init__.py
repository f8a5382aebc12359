"""Pieces every app shares: the service error type, the API's error shape, throttles and pagination.

core imports nothing from gallery, search or duplicates, so every app may import it.
"""
