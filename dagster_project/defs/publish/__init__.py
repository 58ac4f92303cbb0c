"""Publish: the marts and identity explanations become the API's serving snapshot."""
