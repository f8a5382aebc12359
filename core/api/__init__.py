"""The API pieces every app's endpoints share."""
