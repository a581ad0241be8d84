"""Services: each action the JSON API, the CLI, the dashboard and the portal
share (opt a user out, retry or replay deliveries, send a test event) is one
plain async call here; routes and pages are thin adapters over it."""
