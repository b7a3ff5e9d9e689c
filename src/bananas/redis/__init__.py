"""Everything that talks to Redis. The only package that imports redis-py."""
