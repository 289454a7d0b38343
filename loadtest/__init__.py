"""Load tests: Locust scenarios against the service on loopback."""
