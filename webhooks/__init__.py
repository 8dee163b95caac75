"""The Flask app: notification endpoint, health and metrics, admin console (the live path)."""
