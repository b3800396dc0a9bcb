"""Input and output: file systems (local, SuperFS), splits, format readers and writers."""
