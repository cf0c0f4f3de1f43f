"""The pure domain: value objects, rules and calculations. No I/O, no clock reads, no async."""
