"""Supplier-scale imports of card-key files: reading the file, checking every line, and
writing every key or none in one streamed transaction."""
