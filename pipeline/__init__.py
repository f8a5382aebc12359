"""The one place that composes the steps: store an upload (gallery) -> embed it (search) -> detect its pairs
(duplicates). The apps below never call one another forwards; entry points that start the flow call here."""
