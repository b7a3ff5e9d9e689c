"""The ``bananas`` command: an edge, the only place that reads argv and env, sets up
logging and exits."""
