"""The HTTP API (CONTRACT §0, §1): Powertools routers per area, one resolver module."""
