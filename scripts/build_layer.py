"""Build the Lambda dependencies layer (arm64, no Docker); a no-op when its inputs are unchanged.

.venv/bin/python scripts/build_layer.py [--force]      (``make layer``)
"""

from layer_assets.build import main

if __name__ == "__main__":
    raise SystemExit(main())
