"""Reference servers for the benchmark comparison; not part of the product."""
