"""Read access to a serving snapshot; every SQL statement of the API lives here."""
