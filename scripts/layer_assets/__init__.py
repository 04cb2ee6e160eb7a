"""The Lambda layers' build: part of deploying (``make layer``, ``app.py`` before every synth), and
used by the local stack and the bench the same way. ``build`` holds it: no Docker, and nothing done
while the inputs' content hash is unchanged. In no Lambda asset.
"""
