"""Booking durability service: the domain package shipped to every Lambda as a layer."""

__version__ = "0.1.0"
