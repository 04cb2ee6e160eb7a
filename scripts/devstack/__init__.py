"""Developer tools for the local stack: provider doubles and sinks, on loopback only."""
