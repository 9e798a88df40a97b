"""A small sample file for `make demo`: the demo asks for a completion at the start of the last line."""

from dataclasses import dataclass


@dataclass
class Item:
    name: str
    price: float
    quantity: int = 0


def total_value(items):
    """Return the total value of all items in stock."""
    total = 0.0
    for item in items:
        
    return total
