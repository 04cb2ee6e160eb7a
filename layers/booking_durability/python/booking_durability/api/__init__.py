"""The HTTP API (docs/reference/http-api.md#conventions, docs/reference/http-api.md#routes): Powertools
routers per area, one resolver module."""
