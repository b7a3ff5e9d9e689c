"""Route table texts shared by the tests (imported by name: tests/routing is on sys.path)."""

GOOD_TABLE = """
[[route]]
name = "send_email"
routing_key = "email"

[[route]]
glob = "image.*"
routing_key = "gpu"
priority = "high"

[[route]]
regex = 'report\\.(daily|weekly)'
routing_key = "reports"
priority = "low"

[[route]]
callable = "routing_rules:by_tenant"
"""
